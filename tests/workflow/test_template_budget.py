"""Template budgets in steps: a template over budget fails its step at once and for good,
and templates render before the step's write transaction opens."""

from __future__ import annotations

import threading
import time

import pytest

from workflow_service import templating
from workflow_service.db import database
from workflow_service.engine import ExecutionFailed
from workflow_service.models import Execution, StepRun, Task
from workflow_service.templating import TemplateRenderer
from workflow_service.workflows import WorkflowStore

from .test_engine import event, make_workflow

#: A recursive loop over two items, 40 levels deep: 2**40 iterations without a budget.
RECURSIVE = (
    "{% for x in entity.tags recursive %}"
    "{% if loop.depth < 40 %}{{ loop(entity.tags) }}{% endif %}{% endfor %}"
)


@pytest.fixture
def store(workflow_db, redis_client, namespace):
    from workflow_service.runtime import cache_invalidator

    return WorkflowStore(workflow_db, cache_invalidator(redis_client, namespace))


DATA = {"title": "Passwords", "policy_type": "security", "owner": "bob", "tags": ["a", "b"]}


@pytest.mark.parametrize(
    "step",
    [
        {"kind": "notify", "recipients": ["owner"], "subject": RECURSIVE},
        {
            "kind": "notify",
            "recipients": ["owner"],
            "subject": "s",
            "body": "{{ '%9999999s' % 1 }}",
        },
        {"kind": "create_task", "assignee": "owner", "title": RECURSIVE},
        {
            "kind": "create_task",
            "assignee": "owner",
            "title": "t",
            "description": "{{ 7 ** 9999 }}",
        },
        {"kind": "require_approval", "approvers": ["user:carol"], "title": RECURSIVE},
        {
            "kind": "change_status",
            "to": "in_review",
            "comment": "{{ entity.tags|batch(10**9, 0) }}",
        },
    ],
    ids=["notify", "notify-printf", "task", "task-power", "approval", "change-status"],
)
def test_a_template_over_budget_fails_its_step_at_once_and_is_not_retried(engine, store, step):
    make_workflow(store, steps=[step])
    [execution] = engine.dispatch(event(data=DATA))

    started = time.monotonic()
    # ExecutionFailed is in the run actor's throws: Dramatiq does not retry it.
    with pytest.raises(ExecutionFailed):
        engine.run(execution.id)
    assert time.monotonic() - started < 1.5

    failed = Execution.get_by_id(execution.id)
    assert failed.status == "failed"
    assert (
        "steps of work" in failed.error or "longer than" in failed.error or "bits" in failed.error
    )
    [run] = StepRun.select()
    assert run.status == "failed"
    # Another delivery of the message runs nothing again.
    assert engine.run(execution.id) == "failed"
    assert StepRun.select().count() == 1


def test_recursion_too_deep_is_a_permanent_failure(engine, store):
    forever = "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}"
    make_workflow(store, steps=[{"kind": "notify", "recipients": ["owner"], "subject": forever}])
    [execution] = engine.dispatch(event(data=DATA))
    with pytest.raises(ExecutionFailed):
        engine.run(execution.id)
    assert "recurses too deeply" in Execution.get_by_id(execution.id).error


@pytest.fixture
def render_log(monkeypatch):
    """Records, for every render, whether a database transaction was open."""
    log: list[bool] = []
    original = TemplateRenderer.render

    def render(self, source, context, *, html=False):
        log.append(database.in_transaction())
        return original(self, source, context, html=html)

    monkeypatch.setattr(TemplateRenderer, "render", render)
    return log


def test_steps_render_their_templates_outside_the_write_transaction(engine, store, render_log):
    make_workflow(
        store,
        steps=[
            {"kind": "notify", "recipients": ["owner"], "subject": "New {{ entity.title }}"},
            {"kind": "create_task", "assignee": "owner", "title": "Do {{ entity.title }}"},
            {
                "kind": "require_approval",
                "approvers": ["user:carol"],
                "title": "Approve {{ entity.title }}",
            },
        ],
    )
    [execution] = engine.dispatch(event(data=DATA))

    assert engine.run(execution.id) == "waiting_approval"

    assert render_log and not any(render_log)
    assert Task.get().title == "Do Passwords"


def test_a_slow_render_does_not_hold_up_workflow_writes(engine, store, monkeypatch):
    # Given a render that lasts until a workflow write has finished (as a heavy but
    # legal template can last); if the render held the writer's transaction, the
    # write would wait for it and the render would give up after five seconds
    rendering, written, render_gave_up = threading.Event(), threading.Event(), []
    original = TemplateRenderer.render

    def slow_render(self, source, context, *, html=False):
        rendering.set()
        if not written.wait(5):
            render_gave_up.append(source)
        return original(self, source, context, html=html)

    monkeypatch.setattr(TemplateRenderer, "render", slow_render)
    make_workflow(
        store, steps=[{"kind": "create_task", "assignee": "owner", "title": "{{ entity.title }}"}]
    )
    [execution] = engine.dispatch(event(data=DATA))
    runner = threading.Thread(target=engine.run, args=(execution.id,))
    runner.start()
    try:
        assert rendering.wait(5)
        # When another request saves a workflow meanwhile
        make_workflow(store, name="saved during the render")
        written.set()
    finally:
        runner.join(10)
    # Then its write did not wait for the render
    assert not render_gave_up
    assert Execution.get_by_id(execution.id).status == "completed"


def test_a_heavy_but_legal_template_still_renders():
    rows = [f"row {i}" for i in range(200)]
    source = "{% for r in rows %}{% for s in rows[:100] %}{{ s[-1] }}{% endfor %}{% endfor %}"
    out = templating.render(source, {"rows": rows})
    assert len(out) == 200 * 100
