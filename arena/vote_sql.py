"""The vote's hot path in SQL, for ``arena.services.vote_cast``: the locked read of a battle with
its vote and responses, and the write of a vote with its battle's state and counts.

On PostgreSQL each is one statement (a vote is the arena's hot path: every round trip costs more
than the writes themselves); elsewhere the write goes through the ORM.
"""

from __future__ import annotations

from typing import NamedTuple

from django.db import connection
from django.utils import timezone

from arena.counts import counts_add_vote, counts_add_vote_sql
from arena.models import Battle, Response, Turn, Vote


class VoteResponse(NamedTuple):
    """What a vote needs of each response (read as plain tuples: the hot path)."""

    side: str
    state: str
    attempt: int
    leaks_identity: bool
    turn_index: int
    length: int
    header_count: int
    list_count: int
    bold_count: int


def vote_read_sql() -> str:
    """The battle (locked), its vote's id if any, and one row per response, in one statement."""
    battle, vote = Battle._meta.db_table, Vote._meta.db_table
    turn, response = Turn._meta.db_table, Response._meta.db_table
    style = ", ".join(f"r.{name}" for name in Vote.STYLE_FIELDS)
    lock = " FOR UPDATE OF b" if connection.features.has_select_for_update_of else ""
    return (
        f"SELECT b.id, b.voter, b.mode, b.model_a_id, b.model_b_id, b.categories, v.id,"
        f" r.side, r.state, r.attempt, r.leaks_identity, t.{connection.ops.quote_name('index')},"
        f" {style}"
        f" FROM {battle} b LEFT JOIN {vote} v ON v.battle_id = b.id"
        f" LEFT JOIN {turn} t ON t.battle_id = b.id LEFT JOIN {response} r ON r.turn_id = t.id"
        f" WHERE b.public_id = %s{lock}"
    )


def vote_write(vote: Vote) -> None:
    """Insert ``vote``, mark its battle voted and count it.

    On PostgreSQL this is one statement (data-modifying CTEs): the vote is the hot path of the
    arena and each round trip and ORM query costs more than the writes themselves. Elsewhere the
    same three writes go through the ORM."""
    now = timezone.now()
    if connection.vendor != "postgresql":
        vote.save(force_insert=True)
        Battle.objects.filter(pk=vote.battle_id).update(state=Battle.State.VOTED, updated=now)
        counts_add_vote(vote)
        return
    qn = connection.ops.quote_name
    fields = [f for f in Vote._meta.concrete_fields if not f.primary_key]
    values = [f.get_db_prep_save(f.pre_save(vote, True), connection) for f in fields]
    sql = (
        f"WITH ins AS (INSERT INTO {Vote._meta.db_table} ({', '.join(qn(f.column) for f in fields)})"
        f" VALUES ({', '.join(['%s'] * len(fields))}) RETURNING id),"
        f" upd AS (UPDATE {Battle._meta.db_table} SET state = %s, updated = %s WHERE id = %s)"
    )
    params: list[object] = [*values, Battle.State.VOTED, now, vote.battle_id]
    counted = counts_add_vote_sql(vote)
    if counted is not None:
        sql += f", counted AS ({counted[0]})"
        params += counted[1]
    with connection.cursor() as cursor:
        cursor.execute(sql + " SELECT id FROM ins", params)
        vote.pk = cursor.fetchone()[0]
    vote._state.adding = False
