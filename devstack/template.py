"""Reading template.yaml: CloudFormation short tags, intrinsic functions, SAM globals."""

from __future__ import annotations

import copy
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"


class _Loader(yaml.SafeLoader):
    """SafeLoader that turns `!Ref X` into {"Ref": X} and `!Fn Y` into {"Fn::Fn": Y}."""


def _intrinsic(loader: _Loader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_Loader.add_multi_constructor("!", _intrinsic)


def load(path: Path = TEMPLATE) -> dict[str, Any]:
    """The parsed template (a fresh copy each call; parsing is done once per file version)."""
    path = Path(path).resolve()
    return copy.deepcopy(_parsed(path, path.stat().st_mtime_ns))


@functools.cache
def _parsed(path: Path, _mtime: int) -> dict[str, Any]:
    data: dict[str, Any] = yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    return data


@dataclass
class Function:
    logical_id: str
    properties: dict[str, Any]
    code_uri: str
    handler: str
    timeout: int
    memory: int
    environment: dict[str, Any]
    events: dict[str, dict[str, Any]] = field(default_factory=dict)

    def events_of(self, kind: str) -> dict[str, dict[str, Any]]:
        return {
            name: spec.get("Properties", {})
            for name, spec in self.events.items()
            if spec.get("Type") == kind
        }


def functions(template: dict[str, Any]) -> list[Function]:
    """Every AWS::Serverless::Function with SAM Globals applied."""
    globals_ = template.get("Globals", {}).get("Function", {})
    found = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = {**globals_, **resource.get("Properties", {})}
        env = {
            **globals_.get("Environment", {}).get("Variables", {}),
            **resource.get("Properties", {}).get("Environment", {}).get("Variables", {}),
        }
        found.append(
            Function(
                logical_id=logical_id,
                properties=props,
                code_uri=str(props["CodeUri"]).rstrip("/"),
                handler=str(props["Handler"]),
                timeout=int(props.get("Timeout", 3)),
                memory=int(props.get("MemorySize", 128)),
                environment=env,
                events=props.get("Events", {}) or {},
            )
        )
    return found


_SUB = re.compile(r"\$\{([^}!]+)\}")


class Resolver:
    """Resolves Ref / GetAtt / Sub / Join against physical values of provisioned resources."""

    def __init__(
        self,
        template: dict[str, Any],
        physical: dict[str, dict[str, str]],
        pseudo: dict[str, str],
        parameters: dict[str, str] | None = None,
    ) -> None:
        self.template = template
        self.physical = physical  # logical id -> {"Ref": ..., "Arn": ..., ...}
        self.pseudo = pseudo  # AWS::Region, AWS::AccountId, ...
        self.parameters = {
            name: str(spec.get("Default", ""))
            for name, spec in template.get("Parameters", {}).items()
        }
        self.parameters.update(parameters or {})

    def ref(self, name: str) -> str:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.physical:
            return self.physical[name]["Ref"]
        raise KeyError(f"Ref to {name!r}, which the local stack has not created")

    def get_att(self, name: str, attribute: str) -> str:
        try:
            return self.physical[name][attribute]
        except KeyError as exc:
            raise KeyError(f"GetAtt {name}.{attribute} is not known locally") from exc

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                return self.get_att(arg[0], arg[1])
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::Join":
                return str(arg[0]).join(str(self.resolve(v)) for v in arg[1])
        return {k: self.resolve(v) for k, v in value.items()}

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name and not name.startswith("AWS::"):
                logical, attribute = name.split(".", 1)
                return self.get_att(logical, attribute)
            return self.ref(name)

        return _SUB.sub(replace, text)
