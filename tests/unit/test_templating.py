"""The sandboxed renderer fills in given values and nothing else."""

from __future__ import annotations

import pytest

from workflow_service.templating import (
    MAX_OUTPUT_CHARS,
    MAX_RENDER_STEPS,
    TemplateBudgetExceeded,
    TemplateInvalid,
    TemplateRenderError,
    renderer,
)

CONTEXT = {
    "entity": {"id": "p-1", "title": "Access control", "owner": "olivia", "tags": ["a", "b"]},
    "execution": {"id": "e-1", "workflow": "Policy approval"},
    "comments": ["looks fine"],
}


def test_renders_entity_and_execution_fields():
    out = renderer.render(
        "{{ entity.title }} ({{ entity.id }}) by {{ entity.owner }}: "
        "{{ entity.tags | join(', ') }} via {{ execution.workflow }}",
        CONTEXT,
    )
    assert out == "Access control (p-1) by olivia: a, b via Policy approval"


def test_unknown_field_is_an_error_naming_it():
    with pytest.raises(TemplateRenderError, match="titel"):
        renderer.render("{{ entity.titel }}", CONTEXT)


def test_html_bodies_escape_values_and_text_bodies_do_not():
    context = {"entity": {"title": "<script>alert(1)</script>"}}
    assert renderer.render("<p>{{ entity.title }}</p>", context, html=True) == (
        "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"
    )
    assert renderer.render("{{ entity.title }}", context) == "<script>alert(1)</script>"


@pytest.mark.parametrize(
    "source",
    [
        "{{ entity.__class__ }}",
        "{{ entity.__class__.__mro__[1].__subclasses__() }}",
        "{{ entity.items.__globals__ }}",
        "{{ ''.__class__.__base__.__subclasses__() }}",
        "{{ entity.title.format.__globals__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ self._TemplateReference__context }}",
    ],
)
def test_internals_are_unreachable(source):
    with pytest.raises(TemplateRenderError):
        renderer.render(source, CONTEXT)


@pytest.mark.parametrize(
    "source",
    [
        "{{ entity.tags.append('x') }}",
        "{{ entity.update({'owner': 'mallory'}) }}",
        "{{ entity.pop('owner') }}",
        "{{ entity.tags.clear() }}",
    ],
)
def test_mutating_methods_are_refused_and_values_unchanged(source):
    context = {"entity": {"owner": "olivia", "tags": ["a"]}}
    with pytest.raises(TemplateRenderError, match="not allowed|unsafe"):
        renderer.render(source, context)
    assert context == {"entity": {"owner": "olivia", "tags": ["a"]}}


@pytest.mark.parametrize(
    "source",
    [
        "{% include '/etc/passwd' %}",
        "{% import '/etc/passwd' as p %}",
        "{% extends '/etc/passwd' %}",
        "{% from 'x' import y %}",
    ],
)
def test_templates_cannot_read_files(source):
    with pytest.raises(TemplateInvalid):
        renderer.check(source)
    with pytest.raises(TemplateRenderError):
        renderer.render(source, CONTEXT)


def test_objects_in_the_context_arrive_as_plain_values():
    class Secretive:
        password = "hunter2"

        def __str__(self):
            return "secretive"

    out = renderer.render("{{ thing }}", {"thing": Secretive()})
    assert out == "secretive"
    with pytest.raises(TemplateRenderError):
        renderer.render("{{ thing.password }}", {"thing": Secretive()})


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'a' * 100000000 }}",
        "{{ 9 ** 999999999 }}",
        "{% for i in range(100000000) %}x{% endfor %}",
        "{{ lipsum(1000) }}",
    ],
)
def test_resource_bombs_are_refused(source):
    with pytest.raises(TemplateRenderError):
        renderer.render(source, CONTEXT)


def test_output_is_bounded():
    context = {"rows": ["x" * 1000] * 200}
    with pytest.raises(TemplateRenderError, match=str(MAX_OUTPUT_CHARS)):
        renderer.render(
            "{% for r in rows %}{% for s in rows %}{{ r }}{% endfor %}{% endfor %}", context
        )


def test_deep_loop_nesting_and_huge_templates_are_invalid():
    deep = "{% for a in x %}{% for b in x %}{% for c in x %}{% endfor %}{% endfor %}{% endfor %}"
    with pytest.raises(TemplateInvalid, match="nested"):
        renderer.check(deep)
    with pytest.raises(TemplateInvalid, match="at most"):
        renderer.check("x" * 20_000)
    with pytest.raises(TemplateInvalid, match="syntax"):
        renderer.check("{{ unclosed")
    # Nesting Jinja parses but Python cannot compile (or parsing cannot reach)
    for source in (
        "{{ " + "(" * 70 + "1" + ")" * 70 + " }}",
        "{% if 1 %}" * 100 + "{% endif %}" * 100,
    ):
        with pytest.raises(TemplateInvalid, match="nested too deeply"):
            renderer.check(source)


def test_step_templates_use_the_same_guarded_renderer():
    # The notify and create_task steps render through templating.render: the limits hold.
    from workflow_service import templating

    with pytest.raises(templating.TemplateError):
        templating.render("{{ ('a' * 10**8) | length }}", {})
    with pytest.raises(templating.TemplateError):
        templating.render("{% include '/etc/passwd' %}", {})
    assert templating.render("plain text", {}) == "plain text"


@pytest.mark.parametrize(
    "source",
    [
        '{{ "a".ljust(300000000) | length }}',
        '{{ "a" | center(300000000) }}',
        '{{ "{:>300000000}".format(1) }}',
        '{{ "x" | indent(300000000, true) }}',
        "{{ (((9 ** 100) ** 100) ** 100) ** 10 }}",
    ],
)
def test_templates_cannot_build_huge_values(source):
    with pytest.raises(TemplateRenderError):
        renderer.render(source, CONTEXT)


# One budget per render: every way to repeat work or grow a value pays into it.
BIG = {"entity": {"tags": ["a", "b"], "big": "x" * 60_000, "title": "Access"}}


@pytest.mark.parametrize(
    "source",
    [
        # loops, recursive loops and recursion
        "{% for x in entity.tags recursive %}"
        "{% if loop.depth < 40 %}{{ loop(entity.tags) }}{% endif %}{% endfor %}",
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
        "{{ f(40) }}",
        "{% for a in entity.big %}{% for b in entity.big if false %}{% endfor %}{% endfor %}",
        "{% for i in entity.big %}{% if entity.big == entity.big ~ '' %}{% endif %}{% endfor %}",
        "{% for i in entity.big %}{% set x = entity.big[::1] %}{% endfor %}",
        # % formatting, ~ and growing filters and methods
        "{{ '%300000000s' % 'a' }}",
        "{{ '%*s' % (300000000, 'a') }}",
        "{{ '%.300000000f' % 1.0 }}",
        "{{ '%300000000s' | format('a') }}",
        "{% set a = entity.big ~ entity.big %}{% set a = a ~ a %}{{ a | length }}",
        "{{ entity.big | replace('x', entity.big) }}",
        "{{ entity.big.replace('x', entity.big) }}",
        "{{ entity.big | join(entity.big) }}",
        "{{ entity.big.join(entity.big) }}",
        "{{ entity.tags | batch(100000000, 'x') | list | length }}",
        "{{ entity.tags | slice(100000000) | list | length }}",
        "{{ entity.title | center(100000000) }}",
        "{{ entity.big | wordwrap(1, true, entity.big) }}",
        "{{ entity.big | indent(entity.big) }}",
        "{{ 'a'.zfill(300000000) | length }}",
        "{{ entity.big * 3 }}",
        "{{ [[1], [2]] | sum(start=[]) }}",
        # values that share parts: [a, a] is twice as long as a
        "{% set a = [entity.big, entity.big] %}{% set b = [a, a] %}{{ b | length }}",
        # integer arithmetic
        "{% set a = 2 ** 100 %}{% set a = a * a %}{% set a = a * a %}{% set a = a * a %}"
        "{% set a = a * a %}{% set a = a * a %}{% set a = a * a %}{{ a }}",
        "{{ 9 ** 99999 }}",
        # methods that are not listed
        "{{ entity.title.translate({97: entity.big}) }}",
        "{{ (1).to_bytes(300000000, 'big') }}",
        "{{ '\t'.expandtabs(100000000) }}",
        "{{ dict.update(entity, {'title': 'x'}) }}",
        "{{ dict.fromkeys(entity.big) }}",
    ],
)
def test_every_path_pays_into_one_budget_and_fails_fast(source):
    # Failing fast is the budget's work: each of these would run for minutes or take
    # gigabytes without it (no wall-clock assertion: the machine may be busy).
    with pytest.raises(TemplateRenderError):
        renderer.render(source, BIG)


def test_budget_errors_say_which_limit_was_hit():
    with pytest.raises(TemplateBudgetExceeded, match=f"more than {MAX_RENDER_STEPS} steps"):
        renderer.render(
            "{% for a in entity.big %}{% for b in entity.big %}{% endfor %}{% endfor %}", BIG
        )
    with pytest.raises(TemplateBudgetExceeded, match="recurses too deeply"):
        renderer.render("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", BIG)


def test_constant_folding_at_compile_time_is_bounded_too():
    # Jinja folds constant filter calls while compiling: the same limits apply there.
    source = "{{ 'ab' | replace('a', '" + "x" * 4000 + "') | replace('x', '" + "y" * 4000 + "') }}"
    renderer.check(source)
    with pytest.raises(TemplateBudgetExceeded):
        renderer.render(source, {})


def test_ordinary_templates_still_render():
    out = renderer.render(
        "{{ entity.title | upper }} {{ entity.tags | join(', ') }} "
        "{% for t in entity.tags %}{{ loop.index }}{{ t }}{% endfor %} "
        "{{ '%5.1f' | format(3.14159) }} {{ '%s-%s' % ('a', 'b') }} {{ entity.title ~ '!' }} "
        "{{ entity.title.replace('A', 'a') }} {{ ', '.join(entity.tags) }} [{{ 'x' | center(5) }}] "
        "{{ entity.title[:3] }} {{ entity.tags | map('upper') | join }} "
        "{% for x in [[1, [2]]] recursive %}{{ x }}{% endfor %}",
        BIG,
    )
    assert out == ("ACCESS a, b 1a2b   3.1 a-b Access! access a, b [  x  ] Acc AB [1, [2]]")
