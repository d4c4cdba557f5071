"""System specs and persona-set resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from personaminer import Workspace
from personaminer.evaluate.systems import BASELINES, Personas, SystemSpecError, default_specs, parse_specs
from tests.evaluate.eval_testkit import make_workspace, plant_persona_set


def test_parse_specs() -> None:
    systems = parse_specs("baselines, memories=extractive, personas:single=single, personas=model:!lora@llm")
    assert [s.name for s in systems] == [*BASELINES, "memories_extractive", "single", "model_!lora"]
    p = systems[-1]
    assert isinstance(p, Personas) and (p.builder, p.terms, p.memory_set) == ("model", ["!lora"], "llm")
    named = parse_specs("personas:dpo=model:listwise+lora")[0]
    assert named.name == "dpo" and named.terms == ["listwise", "lora"]  # type: ignore[attr-defined]
    for bad, msg in [("bogus", "unknown system"), ("random=3", "takes no"), ("personas:x", "needs =BUILDER"),
                     ("random,random", "duplicate")]:
        with pytest.raises(SystemSpecError, match=msg):
            parse_specs(bad)


def _load(ws: Workspace, spec: str, users: list[str]) -> Personas:
    s = parse_specs(spec)[0]
    assert isinstance(s, Personas)
    s._texts, s._tokens = {}, {}
    s.load(ws, users)
    return s


def test_persona_groups_filters_failed_sets_and_ambiguity(tmp_path: Path) -> None:
    path = make_workspace(tmp_path / "ws", {"a": 4, "b": 4, "c": 4})
    with Workspace(path) as ws:
        for u in ("a", "b"):
            plant_persona_set(ws, u, "model", [("Cook", "Likes pasta."), ("Driver", "Fixes cars.")], model="base1")
            plant_persona_set(ws, u, "model", [("Tuned", "After DPO.")], model="base1+lora:abc",
                              adapter="/x/listwise.gguf")
        plant_persona_set(ws, "c", "model", [], model="base1", status="failed")
        plant_persona_set(ws, "a", "model", [("Other sample", "Not used.")], model="base1", sample_index=1)
        with pytest.raises(SystemSpecError, match="several groups"):
            _load(ws, "personas:m=model", ["a", "b", "c"])
        base = _load(ws, "personas:m=model:!lora", ["a", "b", "c"])
        assert base._texts["a"] == ["Cook: Likes pasta.", "Driver: Fixes cars."]
        assert base.not_covered == {"c": "failed set"} and base.llm_tokens("a") == 100
        tuned = _load(ws, "personas:t=model:listwise", ["a", "b", "c"])
        assert tuned._texts["b"] == ["Tuned: After DPO."] and tuned.not_covered == {"c": "no persona set"}
        none = _load(ws, "personas:s=single", ["a"])
        assert none.missing_reason and none.not_covered == {"a": "no persona set"}
        spec = default_specs(ws)
        resolved = [_load(ws, s.spec, ["a", "b"])
                    for s in parse_specs(spec) if isinstance(s, Personas)]
        assert sorted(t for s in resolved for t in s._texts["a"]) == ["Cook: Likes pasta.", "Driver: Fixes cars.",
                                                                      "Tuned: After DPO."], spec
