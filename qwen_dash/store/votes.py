"""Votes: cast (one per person per run, changes recorded), read as battles for the ratings, and
exchanged with other servers as FastChat clean-battle records (import is idempotent).

A vote on a run stores the side order its voter saw (``sides``) and expands into one battle per
pair (``qwen_dash.core.arena.pair_battles``). Imported battles are votes of origin ``import`` with
no local run. Every battle carries the idempotency key of its exported record, so importing a file
twice, or importing this server's own export back, adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, selectinload

from qwen_dash.core.arena import (
    BATTLE_RECORD_FIELDS,
    FROM_FASTCHAT,
    RANDOM_SOURCES,
    TO_FASTCHAT,
    VOTE_WINNERS,
    pair_battles,
    record_key,
)
from qwen_dash.store.base import StoreBase
from qwen_dash.store.database import StoreError
from qwen_dash.store.filters import RunFilters
from qwen_dash.store.runs import utcnow
from qwen_dash.store.schema import Generation, Run, Vote, VoteBattle, VoteChange

# The exported record's fields, in order (FastChat's clean battle plus our run id and voter).
RECORD_FIELDS = BATTLE_RECORD_FIELDS
# What ``battles()`` returns per battle, column by column.
BATTLE_COLUMNS = (
    "model_a",
    "model_b",
    "winner",
    "tstamp",
    "anony",
    "len_a",
    "len_b",
    "source_a",
    "source_b",
    "vote_id",
    "run_id",
    "voter",
)
IMPORT_CHUNK = 2_000
MAX_VOTER_CHARS = 128


@dataclass(frozen=True)
class VoteFilters:
    """Which battles the ratings read.

    ``runs``: the run filters of History and Trends. Its dates apply to when the vote was first
    cast; tag, thinking, mode, kind, user and text need a local run, so they leave imported
    battles out; ``models`` keeps battles between two of these models; ``sources`` keeps battles
    whose two answers both came from one of these sources (imported battles have no source).
    ``blind_only``: only votes cast with the names hidden (imported: FastChat's ``anony``).
    ``include_random``: also battles where an answer came from random weights (twin, tiny).
    """

    runs: RunFilters = field(default_factory=RunFilters)
    blind_only: bool = True
    include_random: bool = False
    include_imported: bool = True

    @property
    def needs_run(self) -> bool:
        """Whether a filter asks for something only a local run has."""
        f = self.runs
        on_run = (f.text, f.tag, f.thinking is not None, f.kind, f.user, f.mode)
        return any(on_run) or bool(f.conversation_id)


@dataclass(frozen=True)
class CastVote:
    """What casting a vote did: created it, changed it (the change recorded), or neither."""

    vote_id: int
    created: bool
    changed: bool
    battles: int


@dataclass(frozen=True)
class ImportResult:
    added: int
    skipped: int


@dataclass(frozen=True)
class VoteCounts:
    """How many votes there are, and how many of their battles each default filter leaves out."""

    votes: int
    battles: int
    not_blind: int
    random_weights: int
    imported: int


def _clean_voter(voter: str | None) -> str | None:
    name = (voter or "").strip()
    if len(name) > MAX_VOTER_CHARS:
        raise StoreError(f"A voter name is longer than {MAX_VOTER_CHARS} characters.")
    return name or None


def _question_id(run: Run) -> str:
    """FastChat's question_id for a local run: its conversation, else the run itself."""
    return run.conversation_id or f"run-{run.id}"


def export_record(vote: Vote, battle: VoteBattle) -> dict[str, Any]:
    """The FastChat clean-battle record of one battle of ``vote`` (the key is its hash)."""
    return {
        "model_a": battle.model_a,
        "model_b": battle.model_b,
        "winner": TO_FASTCHAT[battle.winner],
        "tstamp": float(vote.tstamp),
        "anony": bool(vote.blind),
        "question_id": vote.question_id or f"run-{vote.run_id}",
        "turn": vote.turn if vote.turn is not None else 1,
        "run_id": vote.run_id if vote.origin == "local" else vote.source_run_id,
        "voter": vote.voter,
    }


class VoteQueries(StoreBase):
    """Votes and battles; mixed into ``Store``."""

    # ---- casting -----------------------------------------------------------------------------

    def cast_vote(
        self,
        run_id: int,
        winner: str,
        *,
        sides: Sequence[str],
        voter: str | None,
        blind: bool,
    ) -> CastVote:
        """Record ``voter``'s verdict on a run: ``winner`` is a side letter (a = ``sides[0]``),
        tie or both_bad; ``sides`` the run's models in the order the voter saw them.

        One vote per person per run: a second call changes the vote (and records the change)
        instead of adding one. An unnamed voter counts as one person per run.
        """
        voter = _clean_voter(voter)
        sides = list(sides)
        if winner not in VOTE_WINNERS:
            raise StoreError(f"A vote is one of {', '.join(VOTE_WINNERS)}, got '{winner}'.")
        try:
            pairs = pair_battles(sides, winner)
        except ValueError as exc:
            raise StoreError(f"This vote cannot be recorded: {exc}.") from exc
        for attempt in range(2):
            try:
                with self.writing() as session:
                    return self._cast(session, run_id, winner, sides, voter, blind, pairs)
            except IntegrityError:  # another tab of the same voter won the race: change it
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _cast(
        self,
        session: Session,
        run_id: int,
        winner: str,
        sides: list[str],
        voter: str | None,
        blind: bool,
        pairs: list[tuple[str, str, str]],
    ) -> CastVote:
        run = session.get(Run, run_id)
        if run is None:
            raise StoreError(f"There is no run {run_id}.")
        if run.deleted_at is not None:
            raise StoreError(f"Run {run_id} is deleted: restore it before voting on it.")
        models = {g.model_key for g in run.generations}
        if models and set(sides) != models:
            raise StoreError(
                f"Run {run_id} compared {', '.join(sorted(models))}; the vote names "
                f"{', '.join(sides)}."
            )
        now = utcnow()
        vote = session.scalars(
            select(Vote).where(Vote.run_id == run_id, _voter_is(voter)).with_for_update()
        ).one_or_none()
        if vote is not None and vote.winner == winner and list(vote.sides) == sides:
            return CastVote(vote.id, created=False, changed=False, battles=len(pairs))
        created = vote is None
        if vote is None:
            vote = Vote(run_id=run_id, created_at=now, voter=voter, origin="local")
            session.add(vote)
        else:
            vote.changes.append(
                VoteChange(
                    changed_at=now,
                    old_winner=vote.winner,
                    new_winner=winner,
                    old_sides=list(vote.sides),
                    new_sides=sides,
                )
            )
            vote.battles.clear()
            session.flush()  # the old battles (and their keys) go before the new ones come
        vote.updated_at, vote.tstamp = now, now.timestamp()
        vote.model_a, vote.model_b, vote.sides = sides[0], sides[1], sides
        vote.winner, vote.blind = winner, blind
        vote.question_id, vote.turn = _question_id(run), run.turn + 1
        vote.battles.extend(VoteBattle(model_a=a, model_b=b, winner=w) for a, b, w in pairs)
        for battle in vote.battles:
            battle.battle_key = record_key(export_record(vote, battle))
        session.flush()
        detail = {"vote": vote.id, "winner": winner, "model_a": sides[0], "model_b": sides[1]}
        self._audit(session, voter, "vote.add", run_id, detail)
        return CastVote(vote.id, created=created, changed=not created, battles=len(pairs))

    def add_vote(
        self,
        run_id: int,
        winner: str,
        *,
        model_a: str,
        model_b: str,
        voter: str | None = None,
        blind: bool = True,
    ) -> int:
        """A vote on a two-model run (model_a shown as side a); see :meth:`cast_vote`."""
        sides = [model_a, model_b]
        return self.cast_vote(run_id, winner, sides=sides, voter=voter, blind=blind).vote_id

    # ---- reading -----------------------------------------------------------------------------

    def get_vote(self, run_id: int, voter: str | None) -> Vote | None:
        """``voter``'s vote on a run, with its battles and change history; None if none."""
        stmt = (
            select(Vote)
            .where(Vote.run_id == run_id, _voter_is(_clean_voter(voter)))
            .options(selectinload(Vote.battles), selectinload(Vote.changes))
        )
        with self.reading() as session:
            return session.scalars(stmt).one_or_none()

    def run_votes(self, run_id: int) -> list[Vote]:
        """Every vote on a run, oldest first, with battles and changes."""
        stmt = (
            select(Vote)
            .where(Vote.run_id == run_id)
            .order_by(Vote.created_at, Vote.id)
            .options(selectinload(Vote.battles), selectinload(Vote.changes))
        )
        with self.reading() as session:
            return list(session.scalars(stmt))

    def battles(self, filters: VoteFilters | None = None) -> dict[str, list[Any]]:
        """Every battle the filters keep, oldest first, column by column (``BATTLE_COLUMNS``):
        FastChat's winner names, answer lengths (answer tokens, reasoning excluded) and each
        answer's weights source where the run is here."""
        stmt = self._battles_query(filters or VoteFilters())
        columns: dict[str, list[Any]] = {name: [] for name in BATTLE_COLUMNS}
        with self.reading() as session:
            for row in session.execute(stmt):
                for name, value in zip(BATTLE_COLUMNS, row, strict=True):
                    columns[name].append(value)
        columns["winner"] = [TO_FASTCHAT[w] for w in columns["winner"]]
        return columns

    def _battles_query(self, f: VoteFilters) -> Select[*tuple[Any, ...]]:
        ga, gb = aliased(Generation, name="ga"), aliased(Generation, name="gb")
        b = VoteBattle
        stmt = (
            select(
                b.model_a,
                b.model_b,
                b.winner,
                Vote.tstamp,
                Vote.blind,
                func.coalesce(ga.n_answer, ga.n_out),
                func.coalesce(gb.n_answer, gb.n_out),
                ga.source,
                gb.source,
                Vote.id,
                Vote.run_id,
                Vote.voter,
            )
            .join(Vote, Vote.id == b.vote_id)
            .outerjoin(Run, Run.id == Vote.run_id)
            .outerjoin(ga, and_(ga.run_id == Vote.run_id, ga.model_key == b.model_a))
            .outerjoin(gb, and_(gb.run_id == Vote.run_id, gb.model_key == b.model_b))
            .where(*self._vote_conditions(f, ga, gb))
            .order_by(Vote.tstamp, b.id)
        )
        return stmt

    def _vote_conditions(self, f: VoteFilters, ga: Any, gb: Any) -> list[ColumnElement[bool]]:
        rf = f.runs
        out = self.conditions.common(rf, Vote.created_at)
        # A deleted run's votes do not count until it is restored (imported battles have none).
        out.append(or_(Vote.run_id.is_(None), Run.deleted_at.is_(None)))
        if f.blind_only:
            out.append(Vote.blind.is_(True))
        if not f.include_imported or f.needs_run:
            out.append(Vote.origin == "local")
        if rf.mode:
            out.append(Run.mode == rf.mode)
        if rf.models:
            out += [VoteBattle.model_a.in_(rf.models), VoteBattle.model_b.in_(rf.models)]
        if rf.sources:
            out += [ga.source.in_(rf.sources), gb.source.in_(rf.sources)]
        if not f.include_random:
            for g in (ga, gb):
                out.append(or_(g.source.is_(None), g.source.not_in(sorted(RANDOM_SOURCES))))
        return out

    def vote_counts(self) -> VoteCounts:
        """Totals for the Leaderboard's notes: what the default filters leave out, and why."""
        ga, gb = aliased(Generation, name="ga"), aliased(Generation, name="gb")
        random_answer = or_(
            ga.source.in_(sorted(RANDOM_SOURCES)), gb.source.in_(sorted(RANDOM_SOURCES))
        )
        stmt = (
            select(
                func.count(func.distinct(Vote.id)),
                func.count(VoteBattle.id),
                func.count(VoteBattle.id).filter(Vote.blind.is_(False)),
                func.count(VoteBattle.id).filter(random_answer),
                func.count(VoteBattle.id).filter(Vote.origin == "import"),
            )
            .select_from(VoteBattle)
            .join(Vote, Vote.id == VoteBattle.vote_id)
            .outerjoin(ga, and_(ga.run_id == Vote.run_id, ga.model_key == VoteBattle.model_a))
            .outerjoin(gb, and_(gb.run_id == Vote.run_id, gb.model_key == VoteBattle.model_b))
        )
        with self.reading() as session:
            row = session.execute(stmt).one()
        return VoteCounts(*(int(v or 0) for v in row))

    # ---- interchange -------------------------------------------------------------------------

    def battle_records(self, filters: VoteFilters | None = None) -> Iterator[dict[str, Any]]:
        """Every battle as its FastChat clean-battle record (``RECORD_FIELDS``), oldest first.
        Without filters: every battle, blind or not, of any source."""
        f = filters or VoteFilters(blind_only=False, include_random=True)
        ids = self._battles_query(f).with_only_columns(VoteBattle.id).subquery()
        stmt = (
            select(Vote, VoteBattle)
            .join(VoteBattle, VoteBattle.vote_id == Vote.id)
            .where(VoteBattle.id.in_(select(ids.c.id)))
            .order_by(Vote.tstamp, VoteBattle.id)
            .execution_options(yield_per=IMPORT_CHUNK)
        )
        with self.reading() as session:
            for vote, battle in session.execute(stmt):
                yield export_record(vote, battle)

    def import_battles(self, records: Iterable[Mapping[str, Any]]) -> ImportResult:
        """Add battles given as validated FastChat records (``RECORD_FIELDS``), in one
        transaction. Model names are kept as given; the run id a record names is kept as
        ``source_run_id`` (it is another server's run), never linked to a local run. A record
        whose key is here already (imported before, or this server's own vote) is skipped."""
        rows = [dict(r) for r in records]
        with self.writing() as session:
            self._complete_old_votes(session)
            fresh = self._new_records(session, rows)
            for start in range(0, len(fresh), IMPORT_CHUNK):
                self._insert_imported(session, fresh[start : start + IMPORT_CHUNK])
        return ImportResult(added=len(fresh), skipped=len(rows) - len(fresh))

    def _new_records(
        self, session: Session, rows: list[dict[str, Any]]
    ) -> list[tuple[str, dict[str, Any]]]:
        keyed: dict[str, dict[str, Any]] = {}
        for row in rows:
            keyed.setdefault(record_key(row), row)
        keys = list(keyed)
        known: set[str] = set()
        for start in range(0, len(keys), IMPORT_CHUNK):
            chunk = keys[start : start + IMPORT_CHUNK]
            known |= set(
                session.scalars(
                    select(VoteBattle.battle_key).where(VoteBattle.battle_key.in_(chunk))
                )
            )
        return [(k, r) for k, r in keyed.items() if k not in known]

    @staticmethod
    def _insert_imported(session: Session, chunk: list[tuple[str, dict[str, Any]]]) -> None:
        vote_rows = []
        for _, r in chunk:
            when = datetime.fromtimestamp(float(r["tstamp"]), UTC)
            vote_rows.append(
                {
                    "run_id": None,
                    "created_at": when,
                    "updated_at": when,
                    "tstamp": float(r["tstamp"]),
                    "model_a": r["model_a"],
                    "model_b": r["model_b"],
                    "sides": [r["model_a"], r["model_b"]],
                    "winner": FROM_FASTCHAT[r["winner"]],
                    "voter": r.get("voter"),
                    "blind": bool(r["anony"]),
                    "origin": "import",
                    "question_id": str(r["question_id"]),
                    "turn": int(r["turn"]),
                    "source_run_id": r.get("run_id"),
                }
            )
        ids = session.scalars(
            insert(Vote).returning(Vote.id, sort_by_parameter_order=True), vote_rows
        ).all()
        battle_rows = [
            {
                "vote_id": vote_id,
                "model_a": r["model_a"],
                "model_b": r["model_b"],
                "winner": FROM_FASTCHAT[r["winner"]],
                "battle_key": key,
            }
            for vote_id, (key, r) in zip(ids, chunk, strict=True)
        ]
        session.execute(insert(VoteBattle), battle_rows)

    @staticmethod
    def _complete_old_votes(session: Session) -> None:
        """Votes from before migration 0004 lack question_id, turn and battle keys: fill them
        (the keys hash the exported record, so they need the first two)."""
        missing = select(VoteBattle.vote_id).where(VoteBattle.battle_key.is_(None))
        stmt = (
            select(Vote)
            .where(Vote.id.in_(missing))
            .options(selectinload(Vote.battles), selectinload(Vote.run))
        )
        for vote in session.scalars(stmt):
            if vote.origin == "local" and vote.run is not None and vote.question_id is None:
                vote.question_id, vote.turn = _question_id(vote.run), vote.run.turn + 1
            for battle in vote.battles:
                battle.battle_key = record_key(export_record(vote, battle))
        session.flush()


def _voter_is(voter: str | None) -> ColumnElement[bool]:
    return Vote.voter.is_(None) if voter is None else Vote.voter == voter
