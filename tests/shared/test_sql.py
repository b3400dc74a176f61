"""Compiled statements give the answers peewee's own queries give, on both databases."""

from __future__ import annotations

from datetime import datetime

import peewee
import pytest

from shared.db import open_database
from shared.sql import CompiledInsert, CompiledQuery, CompiledSelect


class Item(peewee.Model):
    id = peewee.AutoField()
    name = peewee.CharField(unique=True)
    status = peewee.CharField(default="new")
    count = peewee.IntegerField(default=0)
    seen_at = peewee.DateTimeField(null=True)


@pytest.fixture
def db(make_database_url):
    database = open_database(make_database_url("sql"))
    Item.bind(database)
    database.create_tables([Item])
    yield database
    database.drop_tables([Item])
    database.close()


INSERT = CompiledInsert(Item)
INSERT_IGNORING = CompiledInsert(Item, ignore_conflicts=True)
TOUCH = CompiledQuery(
    lambda name, at: Item.update(count=Item.count + 1, seen_at=at, status="seen").where(
        (Item.name == name) & (Item.status != "gone")
    )
)
BY_NAME = CompiledSelect(Item, lambda name: Item.name == name)


def test_inserts_return_the_new_id_and_a_skipped_conflict_inserts_nothing(db):
    first = INSERT.execute(db, {"name": "a"})
    second = INSERT.execute(db, {"name": "b"})
    assert second == first + 1
    assert INSERT_IGNORING.execute(db, {"name": "a"}) == 0
    assert INSERT_IGNORING.execute(db, {"name": "c"}) == 1
    assert [i.name for i in Item.select().order_by(Item.id)] == ["a", "b", "c"]


def test_a_compiled_update_keeps_its_constants_and_takes_new_values_each_run(db):
    INSERT.execute(db, {"name": "a"})
    INSERT.execute(db, {"name": "gone", "status": "gone"})
    at = datetime(2030, 1, 2, 3, 4, 5, 678000)
    assert TOUCH.execute(db, "a", at) == 1
    assert TOUCH.execute(db, "a", at) == 1
    assert TOUCH.execute(db, "gone", at) == 0  # the constant in its WHERE still applies
    item = Item.get(Item.name == "a")
    assert (item.count, item.status, item.seen_at) == (2, "seen", at)


def test_a_compiled_select_answers_what_peewee_answers(db):
    INSERT.execute(db, {"name": "a", "seen_at": datetime(2030, 1, 1)})
    compiled = BY_NAME.first(db, "a")
    assert compiled.__data__ == Item.get(Item.name == "a").__data__
    assert not compiled.is_dirty()
    assert BY_NAME.first(db, "nobody") is None


def test_a_statement_that_drops_a_stand_in_is_refused(db):
    broken = CompiledQuery(lambda name, unused: Item.update(status="x").where(Item.name == name))
    with pytest.raises(RuntimeError, match="lost a stand-in"):
        broken.execute(db, "a", "b")
