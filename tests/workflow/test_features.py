"""The list of features: what each declares is well-formed, and installing it is
idempotent. (Whether each feature's routes, steps, jobs and hooks work is what the
feature's own tests show; the import contracts in pyproject.toml keep the layering.)"""

from __future__ import annotations

import dataclasses

from workflow_service import features
from workflow_service.kernel import hooks
from workflow_service.kernel.feature import PROVIDERS, Feature
from workflow_service.settings import WorkflowSettings
from workflow_service.steps import kinds


def test_every_feature_is_named_once_and_declares_what_exists():
    names = [f.name for f in features.FEATURES]
    assert len(names) == len(set(names))
    sections = {f.name for f in dataclasses.fields(WorkflowSettings)}
    step_kinds = [cls.kind for f in features.FEATURES for cls in f.steps]
    assert len(step_kinds) == len(set(step_kinds)), "a step kind declared twice"
    for feature in features.FEATURES:
        assert set(feature.settings) <= sections, feature.name
        assert set(feature.hooks) <= set(hooks.HOOKS) | set(PROVIDERS), feature.name
        assert all(m.startswith("workflow_service.") for m in feature.actor_modules)


def test_installing_twice_registers_and_subscribes_once():
    features.install()
    before = {name: hook.subscribers for name, hook in hooks.HOOKS.items()}
    installed = features.install()
    assert {name: hook.subscribers for name, hook in hooks.HOOKS.items()} == before
    assert installed[: len(features.FEATURES)] == list(features.FEATURES)
    assert {cls.kind for f in features.FEATURES for cls in f.steps} <= set(kinds())
    # the audit trail hears every recorded change; approvals hear every ended execution
    assert len(hooks.execution_ended.subscribers) == 1
    assert all(hooks.HOOKS[name].subscribers for name in hooks.HOOKS)


def test_a_plugin_module_may_declare_a_feature(tmp_path, monkeypatch):
    (tmp_path / "extra_feature.py").write_text(
        "from workflow_service.kernel.feature import Feature\n"
        "FEATURE = Feature(name='extra', settings=('files_dir',))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    found = features.all_features(["extra_feature"])
    assert found[-1].name == "extra" and isinstance(found[-1], Feature)
    assert found[: len(features.FEATURES)] == list(features.FEATURES)


def test_a_feature_declaration_cannot_be_changed_after_the_fact():
    feature = Feature(name="x", hooks={"execution_ended": print})
    try:
        feature.hooks["step_recorded"] = print  # type: ignore[index]
    except TypeError:
        pass
    else:
        raise AssertionError("a Feature's hooks must be read-only")
    assert dict(feature.hooks) == {"execution_ended": print}


def test_a_hook_calls_its_subscribers_in_order_and_once_each():
    hook = hooks.Hook("test", "a hook for this test")
    calls = []

    def first(x):
        calls.append(("first", x))

    def second(x):
        calls.append(("second", x))

    hook.subscribe(first)
    hook.subscribe(second)
    hook.subscribe(first)
    hook(1)
    assert calls == [("first", 1), ("second", 1)]
    hook.unsubscribe(first)
    hook(2)
    assert calls[-1] == ("second", 2) and len(calls) == 3
