"""Who acts on an outreach item for a key: the bound RM, an admin for an RM, or nobody."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.engagement.domain.lifecycle import ActedBeforeItem, Actor, ActorUnknown, acted_after, acting

CLAIMED = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)


def test_a_bound_key_acts_as_its_rm_whatever_rm_the_request_names() -> None:
    actor = acting("ab12cd34", admin=False, bound_rm="BR014-RM1", named_rm="BR014-RM2")
    assert actor == Actor("BR014-RM1", admin=False)
    assert actor.audit_name == "BR014-RM1"


def test_an_unbound_rm_key_may_not_act_even_naming_an_rm() -> None:
    with pytest.raises(ActorUnknown, match=r"not bound to an RM.*KEY=rm:RM_ID@BRANCH"):
        acting("ab12cd34", admin=False, bound_rm=None, named_rm="BR014-RM1")


def test_an_admin_acting_for_an_rm_is_audited_as_the_key_for_that_rm() -> None:
    actor = acting("ab12cd34", admin=True, bound_rm=None, named_rm="BR014-RM1")
    assert (actor.name, actor.admin, actor.audit_name) == ("BR014-RM1", True, "ab12cd34 for BR014-RM1")


def test_an_admin_naming_no_rm_acts_in_its_own_name() -> None:
    actor = acting("ab12cd34", admin=True, bound_rm=None, named_rm=None)
    assert (actor.name, actor.audit_name) == ("admin:ab12cd34", "admin:ab12cd34")


def test_an_action_stated_before_the_items_last_step_is_refused_naming_both_times() -> None:
    with pytest.raises(ActedBeforeItem, match=r"2026-03-02T04:59:59\+00:00 is before item I-1's last step"):
        acted_after("I-1", CLAIMED - timedelta(seconds=1), CLAIMED)


def test_an_action_stated_at_or_after_the_items_last_step_is_accepted() -> None:
    acted_after("I-1", CLAIMED, CLAIMED)
    acted_after("I-1", CLAIMED + timedelta(hours=1), CLAIMED)
