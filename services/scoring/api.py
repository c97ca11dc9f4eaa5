"""HTTP entrypoint of scoring: customer views, distribution, migrations, policies, overrides."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scoring import views
from services.scoring.domain.codec import reason_json
from services.scoring.domain.customer import CustomerState, OverrideRefused
from services.scoring.domain.evaluation import derive
from services.scoring.domain.features import open_complaints
from services.scoring.domain.policy import Policy, load_policy
from services.scoring.domain.simulation import Move
from services.scoring.handlers import Scoring, UnknownCustomer
from services.scoring.household_api import household_router
from services.scoring.household_schemas import customer_household
from services.scoring.schemas import (
    Activation,
    CustomerFeatures,
    CustomerPage,
    CustomerPublic,
    CustomerSummary,
    Distribution,
    ErasureCreate,
    ErasurePublic,
    LabelFlow,
    LabelMigration,
    LabelPublic,
    MigrationCell,
    MigrationMatrix,
    OverrideCreate,
    OverridePublic,
    PolicySummary,
    ReasonPublic,
    SimulationPublic,
    StageCell,
    TierChangePublic,
    TierChangesOnDay,
    money,
)
from services.scoring.store import ScoringStore
from shared.auth import Principal, Role
from shared.bodies import read_document
from shared.contracts.types import CustomerIdPath, Stage, Tier, VersionPath
from shared.http import ApiError, PeriodQuery, Responses, require, require_branch_reader
from shared.whoami import whoami_router

OpsKey = Annotated[Principal, Depends(require(Role.OPS))]
# Ops keys, and RM keys bound to a branch: each reads the customers of the branches it sees.
CustomerReader = Annotated[Principal, Depends(require_branch_reader(Role.OPS))]
AdminKey = Annotated[Principal, Depends(require(Role.ADMIN))]
PathId = CustomerIdPath
LabelQuery = Annotated[
    str | None, Query(pattern=r"^[a-z][a-z0-9_]{0,47}$", description="Only customers holding this label")
]
HouseholdTierQuery = Annotated[
    Tier | None, Query(description="Only members of households of this tier (their highest member tier)")
]
_NOT_FOUND: Responses = {404: {"description": "Unknown customer, or one of a branch the key does not see"}}
_POLICY_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": Policy.model_json_schema()},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


def customer_view(state: CustomerState, updated_at: datetime, now: datetime) -> CustomerPublic:
    decision = state.decision
    assert decision is not None
    vector = derive(state.features, now)
    f = state.features
    override = state.override
    return CustomerPublic(
        customer_id=state.customer_id,
        tier=decision.tier,
        stage=decision.stage,
        score=decision.score,
        policy_version=decision.policy_version,
        tier_since=decision.tier_since,
        features=CustomerFeatures(
            txn_count=f.txn_count,
            txn_amount=money(f.txn_amount),
            last_txn_at=f.last_txn_at,
            aum=money(vector["aum"]),
            aum_avg_30d=money(vector["aum_avg_30d"]),
            aum_avg_90d=money(vector["aum_avg_90d"]),
            txn_count_30d=vector["txn_count_30d"],
            txn_count_90d=vector["txn_count_90d"],
            txn_count_365d=vector["txn_count_365d"],
            txn_amount_30d=money(vector["txn_amount_30d"]),
            txn_amount_90d=money(vector["txn_amount_90d"]),
            txn_amount_365d=money(vector["txn_amount_365d"]),
            interaction_count=f.interaction_count,
            last_interaction_at=f.last_interaction_at,
            days_since_last_activity=vector["days_since_last_activity"],
            products_held=vector["products_held"],
            channel_mix=f.channels,
            nps_latest=f.nps_latest,
            nps_category=vector["nps_category"],
            csat_avg=None if vector["csat_avg"] is None else round(float(vector["csat_avg"]), 2),
            complaints_open=open_complaints(f),
            tenure_days=vector["tenure_days"],
            clv=money(decision.clv),
        ),
        reasons=[ReasonPublic.model_validate(reason_json(r)) for r in decision.reasons],
        labels=[
            LabelPublic(
                name=label.name,
                dimension=label.dimension,
                since=label.since,
                reason=ReasonPublic.model_validate(reason_json(label.reason)),
                outside_since=label.outside_since,
            )
            for label in decision.labels
        ],
        override=None
        if override is None
        else OverridePublic(
            tier=override.tier,
            reason=override.reason,
            expires_at=override.expires_at,
            set_by=override.set_by,
            set_at=override.set_at,
            active=override.active(now),
        ),
        profile=f.profile,
        household=customer_household(f.profile),
        next_review_at=decision.next_review_at,
        updated_at=updated_at,
    )


def build_router(engine: AsyncEngine, scoring: Scoring) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["scoring"])

    async def load_view(customer_id: str, branches: frozenset[str] | None = None) -> CustomerPublic:
        found = await scoring.customer(customer_id, branches)
        if found is None:
            raise ApiError(404, f"unknown customer {customer_id!r}")
        return customer_view(*found)

    @router.get("/customers/{customer_id}", responses=_NOT_FOUND)
    async def get_customer(customer_id: PathId, key: CustomerReader) -> CustomerPublic:
        """The customer's tier, stage, score, features and the reasons for the decision."""
        return await load_view(customer_id, key.branches)

    @router.delete(
        "/customers/{customer_id}", status_code=202, responses={404: {"description": "Erased already"}}
    )
    async def erase_customer(customer_id: PathId, body: ErasureCreate, key: AdminKey) -> ErasurePublic:
        """Erase the customer's personal data (PIPL Art. 47, GDPR Art. 17): scoring's state,
        features, history and overrides go in one transaction with a tombstone, an erasure record
        (who, when, why; no personal data) and `customer.erased.v1` for every subscriber.
        Answered once committed; from then on the customer is unknown and their events refused.
        A customer scoring never decided is erased too (`scoring_held_data: false`): engagement
        or feedback may hold their data. 404 once erased."""
        try:
            erased_at, decided = await scoring.erase(customer_id, body.reason, key.key_id)
        except UnknownCustomer:
            raise ApiError(404, f"customer {customer_id!r} is erased already") from None
        return ErasurePublic(
            customer_id=customer_id,
            erased_at=erased_at,
            scoring_held_data=decided,
            note="engagement, feedback and subscribers erase on consuming customer.erased.v1",
        )

    @router.get("/customers/{customer_id}/tier-history", responses=_NOT_FOUND)
    async def get_history(
        customer_id: PathId, key: CustomerReader, limit: Annotated[int, Query(ge=1, le=1000)] = 200
    ) -> list[TierChangePublic]:
        """Every tier or stage change of the customer, newest first."""
        async with engine.connect() as db:
            if not await views.visible(db, customer_id, key.branches):
                raise ApiError(404, f"unknown customer {customer_id!r}")
            rows = await views.tier_history(db, customer_id, limit)
        return [TierChangePublic.model_validate(row) for row in rows]

    @router.get("/customers")
    async def list_customers(
        key: CustomerReader,
        tier: Tier | None = None,
        stage: Stage | None = None,
        branch_id: Annotated[str | None, Query(max_length=128)] = None,
        segment: Annotated[str | None, Query(max_length=64)] = None,
        region: Annotated[str | None, Query(max_length=64)] = None,
        label: LabelQuery = None,
        household_tier: HouseholdTierQuery = None,
        after: Annotated[
            str | None, Query(max_length=64, description="customer_id to continue after")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> CustomerPage:
        """Customers by tier, stage, branch, segment, region, label or household tier, in customer-id
        order; a key scoped to branches sees their customers only."""
        filters = _filters(tier, stage, segment, region, label, household_tier)
        async with engine.connect() as db:
            rows = await views.customers(db, filters, key.branch_scope(branch_id), after, limit)
        next_after = rows[-1]["customer_id"] if len(rows) == limit else None
        return CustomerPage(items=[_summary(row) for row in rows], next_after=next_after)

    @router.get("/tiers/distribution")
    async def get_distribution(
        key: CustomerReader,
        branch_id: Annotated[str | None, Query(max_length=128)] = None,
        segment: Annotated[str | None, Query(max_length=64)] = None,
        region: Annotated[str | None, Query(max_length=64)] = None,
        label: LabelQuery = None,
        household_tier: HouseholdTierQuery = None,
    ) -> Distribution:
        """How many customers (of the branches the key sees, of households of `household_tier` if
        given) sit in each tier and stage, and hold each label."""
        filters = _filters(None, None, segment, region, label, household_tier)
        async with engine.connect() as db:
            scope = key.branch_scope(branch_id)
            cells = await views.distribution(db, filters, scope)
            labels = await views.label_counts(db, filters, scope)
        return _distribution(cells, labels)

    @router.get("/tiers/migrations")
    async def get_migrations(key: OpsKey, period: PeriodQuery) -> MigrationMatrix:
        """Tier of every customer at `from` against their tier at `to` (`none`: not yet known), and
        per label how many customers entered, left or kept it in between."""
        start, end = period.start, period.end
        async with engine.connect() as db:
            cells = await views.migrations(db, start, end, key.branch_scope(None))
            flows = await views.label_flows(db, start, end, key.branch_scope(None))
        moves = [MigrationCell(from_tier=a, to_tier=b, count=n) for a, b, n in sorted(cells)]
        counts: dict[str, dict[str, int]] = {}
        for name, flow, count in flows:
            counts.setdefault(name, {})[flow] = count
        label_flows = [
            LabelMigration(
                label=name, entered=by.get("entered", 0), left=by.get("left", 0), held=by.get("held", 0)
            )
            for name, by in sorted(counts.items())
        ]
        return MigrationMatrix(start=start, end=end, moves=moves, label_flows=label_flows)

    @router.get("/tiers/changes-per-day")
    async def get_changes_per_day(key: OpsKey, period: PeriodQuery) -> list[TierChangesOnDay]:
        """Tier and stage changes recorded per UTC day in [from, to), by direction; quiet days omitted."""
        async with engine.connect() as db:
            rows = await views.changes_per_day(db, period.start, period.end, key.branch_scope(None))
        days: dict[Any, dict[str, int]] = {}
        for day, direction, count in rows:
            days.setdefault(day, {})[direction] = count
        return [TierChangesOnDay(day=day, changes=changes) for day, changes in days.items()]

    @router.get("/policies")
    async def list_policies(_key: OpsKey) -> list[PolicySummary]:
        """Every stored policy version; one is active."""
        async with engine.connect() as db:
            return [PolicySummary.model_validate(row) for row in await views.policies(db)]

    @router.get("/policies/{version}", responses={404: {"description": "Unknown version"}})
    async def get_policy(version: VersionPath, _key: OpsKey) -> dict[str, Any]:
        """The policy document, as stored."""
        async with engine.connect() as db:
            document = await views.policy_document(db, version)
        if document is None:
            raise ApiError(404, f"unknown policy version {version!r}")
        return document

    @router.post(
        "/policies", status_code=201, openapi_extra=_POLICY_BODY, responses={409: {"description": "Exists"}}
    )
    async def create_policy(request: Request, key: AdminKey) -> PolicySummary:
        """Store a new policy version (JSON or YAML). It is not active until activated."""
        policy = await _read_policy(request)
        try:
            async with engine.begin() as db:
                await ScoringStore(db).install_policy(policy, actor=key.key_id, activate=False)
        except IntegrityError:
            raise ApiError(409, f"policy version {policy.version!r} exists; versions are immutable") from None
        async with engine.connect() as db:
            stored = next(p for p in await views.policies(db) if p["version"] == policy.version)
        return PolicySummary.model_validate(stored)

    @router.post("/policies/simulate", openapi_extra=_POLICY_BODY)
    async def simulate_candidate(request: Request, _key: AdminKey) -> SimulationPublic:
        """What the posted policy would do to the current customers. Nothing is changed."""
        return await _simulate(await _read_policy(request))

    @router.post("/policies/{version}/simulate", responses={404: {"description": "Unknown version"}})
    async def simulate_stored(version: VersionPath, _key: AdminKey) -> SimulationPublic:
        """What a stored policy version would do to the current customers. Nothing is changed."""
        return await _simulate(await _stored_policy(version))

    @router.post("/policies/{version}/activate", responses={404: {"description": "Unknown version"}})
    async def activate(version: VersionPath, _key: AdminKey) -> Activation:
        """Make a stored version the active policy; every customer is re-evaluated in batches."""
        await _stored_policy(version)
        async with engine.begin() as db:
            await ScoringStore(db).activate_policy(version)
        return Activation(version=version, active=True, note="customers are being re-evaluated in batches")

    @router.put("/customers/{customer_id}/override", responses=_NOT_FOUND)
    async def put_override(customer_id: PathId, body: OverrideCreate, key: AdminKey) -> CustomerPublic:
        """Set a tier by hand, with a reason and an expiry; it wins until it expires. Audited."""
        try:
            await scoring.set_override(customer_id, body.tier, body.reason, body.expires_at, key.key_id)
        except OverrideRefused as exc:
            raise ApiError(422, str(exc), errors=[]) from None
        except UnknownCustomer:
            raise ApiError(404, f"unknown customer {customer_id!r}") from None
        return await load_view(customer_id)

    @router.delete("/customers/{customer_id}/override", responses=_NOT_FOUND)
    async def delete_override(customer_id: PathId, key: AdminKey) -> CustomerPublic:
        """Clear the override: the policy decides again at once. Audited."""
        try:
            await scoring.clear_override(customer_id, key.key_id)
        except UnknownCustomer:
            raise ApiError(404, f"unknown customer {customer_id!r}") from None
        return await load_view(customer_id)

    async def _stored_policy(version: str) -> Policy:
        async with engine.connect() as db:
            document = await views.policy_document(db, version)
        if document is None:
            raise ApiError(404, f"unknown policy version {version!r}")
        return Policy.model_validate(document)

    async def _simulate(candidate: Policy) -> SimulationPublic:
        simulation, active_version, moment = await scoring.simulate(candidate)
        return SimulationPublic(
            candidate_version=candidate.version,
            active_version=active_version,
            evaluated_at=moment,
            customers=simulation.customers,
            tiers=dict(simulation.tiers),
            stages=dict(simulation.stages),
            tier_migration=[
                MigrationCell(from_tier=a, to_tier=b, count=m.count, sample=m.sample)
                for (a, b), m in sorted(simulation.tier_moves.items())
            ],
            stage_migration=[
                StageCell(from_stage=a, to_stage=b, count=m.count, sample=m.sample)
                for (a, b), m in sorted(simulation.stage_moves.items())
            ],
            labels=dict(simulation.labels),
            label_changes=[
                LabelFlow(
                    label=name,
                    entered=entered.count,
                    left=left.count,
                    sample_entered=entered.sample,
                    sample_left=left.sample,
                )
                for name in sorted(simulation.label_entries.keys() | simulation.label_exits.keys())
                for entered, left in [
                    (simulation.label_entries.get(name, Move()), simulation.label_exits.get(name, Move()))
                ]
            ],
        )

    router.include_router(household_router(engine))
    router.include_router(whoami_router())
    return router


async def _read_policy(request: Request) -> Policy:
    return await read_document(request, load_policy, "policy")


def _filters(
    tier: Tier | None,
    stage: Stage | None,
    segment: str | None,
    region: str | None,
    label: str | None,
    household_tier: Tier | None = None,
) -> dict[str, str | None]:
    return {
        "tier": tier.value if tier else None,
        "stage": stage.value if stage else None,
        "segment": segment,
        "region": region,
        "label": label,
        "household_tier": household_tier.value if household_tier else None,
    }


def _summary(row: dict[str, Any]) -> CustomerSummary:
    return CustomerSummary.model_validate(row)


def _distribution(cells: list[tuple[str, str, int]], labels: dict[str, int]) -> Distribution:
    by_tier: dict[str, int] = {}
    by_stage: dict[str, int] = {}
    matrix: dict[str, dict[str, int]] = {}
    for tier, stage, count in cells:
        by_tier[tier] = by_tier.get(tier, 0) + count
        by_stage[stage] = by_stage.get(stage, 0) + count
        matrix.setdefault(tier, {})[stage] = count
    return Distribution(
        total=sum(by_tier.values()),
        by_tier=by_tier,
        by_stage=by_stage,
        by_tier_and_stage=matrix,
        by_label=labels,
    )
