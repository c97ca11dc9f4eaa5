"""Who acts on an outreach item for a key: the bound RM, an admin for an RM, or nobody."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.engagement.domain.lifecycle import (
    ActedBeforeItem,
    Actor,
    ActorUnknown,
    ItemState,
    ItemStatus,
    TransitionRefused,
    acted_after,
    acting,
    cancel,
    claim,
    follow_customer,
    start,
)

CLAIMED = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 1, 9, tzinfo=UTC)


def test_a_bound_key_acts_as_its_rm_whatever_rm_the_request_names() -> None:
    actor = acting("ab12cd34", admin=False, bound_rm="BR014-RM1", named_rm="BR014-RM2")
    assert actor == Actor("BR014-RM1", admin=False)
    assert actor.audit_name == "BR014-RM1"


def test_an_unbound_rm_key_may_not_act_even_naming_an_rm() -> None:
    with pytest.raises(ActorUnknown, match=r"not bound to an RM.*KEY=rm:RM_ID@BRANCH"):
        acting("ab12cd34", admin=False, bound_rm=None, named_rm="BR014-RM1")


def test_an_admin_acting_for_an_rm_is_audited_as_the_key_for_that_rm() -> None:
    actor = acting("ab12cd34", admin=True, bound_rm=None, named_rm="BR014-RM1")
    assert (actor.name, actor.audit_name) == ("BR014-RM1", "ab12cd34 for BR014-RM1")


def test_an_admin_acting_for_an_rm_may_not_move_another_rms_item_as_theirs() -> None:
    actor = acting("ab12cd34", admin=True, bound_rm=None, named_rm="BR014-RM1")
    held = ItemState("item-1", ItemStatus.ASSIGNED, "BR014-RM2")
    with pytest.raises(TransitionRefused, match="held by BR014-RM2, not BR014-RM1"):
        start(held, actor.name, actor.admin, NOW)
    with pytest.raises(TransitionRefused, match="held by BR014-RM2, not BR014-RM1"):
        cancel(held, actor.name, actor.admin, "tidy up", NOW)
    with pytest.raises(TransitionRefused, match="held by BR014-RM2"):
        claim(held, actor.name)
    own = ItemState("item-2", ItemStatus.ASSIGNED, "BR014-RM1")
    assert start(own, actor.name, actor.admin, NOW).status is ItemStatus.IN_PROGRESS


def test_an_admin_in_its_own_name_may_still_move_any_rms_item() -> None:
    actor = acting("ab12cd34", admin=True, bound_rm=None, named_rm=None)
    held = ItemState("item-1", ItemStatus.ASSIGNED, "BR014-RM2")
    assert cancel(held, actor.name, actor.admin, "RM left the bank", NOW).status is ItemStatus.CANCELLED


def test_an_admin_naming_no_rm_acts_in_its_own_name() -> None:
    actor = acting("ab12cd34", admin=True, bound_rm=None, named_rm=None)
    assert (actor.name, actor.audit_name) == ("admin:ab12cd34", "admin:ab12cd34")


def test_an_action_stated_before_the_items_last_step_is_refused_naming_both_times() -> None:
    with pytest.raises(ActedBeforeItem, match=r"2026-03-02T04:59:59\+00:00 is before item I-1's last step"):
        acted_after("I-1", CLAIMED - timedelta(seconds=1), CLAIMED)


def test_an_action_stated_at_or_after_the_items_last_step_is_accepted() -> None:
    acted_after("I-1", CLAIMED, CLAIMED)
    acted_after("I-1", CLAIMED + timedelta(hours=1), CLAIMED)


def test_an_item_follows_its_customer_to_the_new_branchs_rm_or_back_to_the_queue() -> None:
    assigned = ItemState("item-1", ItemStatus.ASSIGNED, "BR014-RM1")
    assert follow_customer(assigned, "BR015-RM3") == ItemState("item-1", ItemStatus.ASSIGNED, "BR015-RM3")
    assert follow_customer(assigned, None) == ItemState("item-1", ItemStatus.QUEUED, None)
    queued = ItemState("item-2", ItemStatus.QUEUED, None)
    assert follow_customer(queued, None) == queued


def test_an_item_under_way_stays_with_the_rm_who_made_contact() -> None:
    under_way = ItemState("item-1", ItemStatus.IN_PROGRESS, "BR014-RM1", first_contact_at=NOW)
    with pytest.raises(TransitionRefused, match="stays with them"):
        follow_customer(under_way, "BR015-RM3")
