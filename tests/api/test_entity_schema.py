"""Migration 5 creates the assessment and evidence tables the models describe."""

from __future__ import annotations

import pytest

from api_service.models import (
    Assessment,
    AssessmentVersion,
    EntityRefusal,
    Evidence,
    EvidenceVersion,
)
from shared.db import open_database


@pytest.mark.parametrize(
    "model", [Assessment, AssessmentVersion, Evidence, EvidenceVersion, EntityRefusal]
)
def test_the_migrated_table_has_every_column_of_the_model(api_database_url, model):
    db = open_database(api_database_url)
    with db.connection_context():
        columns = {c.name: c for c in db.get_columns(model._meta.table_name)}
        indexes = {tuple(i.columns) for i in db.get_indexes(model._meta.table_name)}
    db.close()

    expected = {f.column_name for f in model._meta.sorted_fields}
    assert set(columns) == expected
    for field in model._meta.sorted_fields:
        assert columns[field.column_name].null == field.null, field.name
    for fields, _unique in model._meta.indexes:
        names = tuple(model._meta.fields[f].column_name for f in fields)
        assert names in indexes, names
