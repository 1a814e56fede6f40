"""Every function runs under its own template role, as it would on AWS.

Two checks, because moto covers only half of IAM:

- **moto judges the action.** Each function gets an IAM role in the emulator, assumed through
  STS; its credentials sign every call the function makes, and moto (IAM authorization on)
  refuses an action the role does not allow. moto cannot match a statement scoped to a
  resource ARN (it evaluates most services against `*`), so the policy loaded into moto is
  the function's expanded policy with its resources widened to `*`, plus the names moto gives
  some operations (`dynamodb:TransactWriteItems`, `s3:ListParts`, ...) wherever the IAM actions
  AWS checks for that operation are all allowed.
- **The recorder judges the resource.** Before any call leaves a function, the operation is
  mapped to the IAM actions and resource ARNs AWS would authorize (a DynamoDB index, each table
  of a batch, each item of a transaction, the source object of a copy, an SES identity...) and
  checked against the function's real expanded policy with IAM's wildcard matching. A miss
  raises the `AccessDenied` error AWS would answer, and every pair is recorded per function.

The policies are the template's own: `samtranslator` (the library behind `sam build`) expands
the SAM policy templates and inline statements into the roles CloudFormation would create, and
the AWS managed policies SAM attaches are expanded from their published documents below.
Conditions are not evaluated locally (no statement in the template uses one on a data plane
call); the operator (provisioning, seeding, smctl, the tests' own set-up) acts as an admin user.
"""

from __future__ import annotations

import contextvars
import copy
import json
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from devstack.template import TEMPLATE, Resolver, load

ADMIN_USER = "sm-local-admin"
# Published documents of the AWS managed policies SAM attaches to function roles.
MANAGED_POLICIES: dict[str, list[dict[str, Any]]] = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*",
        }
    ],
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": [
        {
            "Effect": "Allow",
            "Action": [
                "xray:PutTraceSegments",
                "xray:PutTelemetryRecords",
                "xray:GetSamplingRules",
                "xray:GetSamplingTargets",
                "xray:GetSamplingStatisticSummaries",
            ],
            "Resource": "*",
        }
    ],
    "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole": [
        {
            "Effect": "Allow",
            "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
            "Resource": "*",
        },
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*",
        },
    ],
}
# Actions IAM never refuses (no policy can deny sts:GetCallerIdentity).
ALWAYS_ALLOWED = frozenset({"sts:GetCallerIdentity"})
# The IAM service prefix of each botocore service that is not its own name.
_PREFIX = {"sesv2": "ses", "s3control": "s3"}
# Operations whose IAM action is not named after them (the Service Authorization Reference).
_S3_ACTIONS = {
    "HeadObject": "GetObject",
    "CreateMultipartUpload": "PutObject",
    "UploadPart": "PutObject",
    "CompleteMultipartUpload": "PutObject",
    "ListParts": "ListMultipartUploadParts",
    "ListMultipartUploads": "ListBucketMultipartUploads",
    "ListObjectsV2": "ListBucket",
    "ListObjects": "ListBucket",
    "HeadBucket": "ListBucket",
    "ListObjectVersions": "ListBucketVersions",
    "DeleteObjects": "DeleteObject",
    "GetBucketLifecycleConfiguration": "GetLifecycleConfiguration",
    "PutBucketLifecycleConfiguration": "PutLifecycleConfiguration",
}
_SQS_ACTIONS = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}
_TRANSACT = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


# ---------------------------------------------------------------------- the template's policies


@cache
def translated(template_path: Path = TEMPLATE) -> dict[str, Any]:
    """The template as CloudFormation receives it after the SAM transform (no AWS call)."""
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    sam = yaml_parse(template_path.read_text())
    for resource in sam.get("Resources", {}).values():
        props = resource.get("Properties") or {}
        # The transform wants packaged code; where it lies does not change any role.
        for uri in ("CodeUri", "ContentUri"):
            if uri in props:
                props[uri] = "s3://local-build/package.zip"

    class _NoManagedPolicyNames:
        def load(self) -> dict[str, str]:
            return {}

    region = os.environ.get("AWS_DEFAULT_REGION")
    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
    try:
        result: dict[str, Any] = transform(sam, {}, _NoManagedPolicyNames())
    finally:
        if region is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
    return result


def function_policies(template_path: Path = TEMPLATE) -> dict[str, list[dict[str, Any]]]:
    """Each function's statements (inline and managed), intrinsics not yet resolved."""
    cfn = translated(template_path)
    resources = cfn["Resources"]
    found: dict[str, list[dict[str, Any]]] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        role_ref = resource["Properties"].get("Role", {})
        role_id = role_ref.get("Fn::GetAtt", [None])[0] if isinstance(role_ref, dict) else None
        if role_id not in resources:
            raise ValueError(f"{logical_id}: its Role is not a role of this template")
        role = resources[role_id]["Properties"]
        statements: list[dict[str, Any]] = []
        for policy in role.get("Policies") or []:
            statement = policy["PolicyDocument"]["Statement"]
            statements.extend(statement if isinstance(statement, list) else [statement])
        for arn in role.get("ManagedPolicyArns") or []:
            if arn not in MANAGED_POLICIES:
                raise ValueError(f"{logical_id}: managed policy {arn} has no local document")
            statements.extend(copy.deepcopy(MANAGED_POLICIES[arn]))
        found[logical_id] = statements
    return found


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@dataclass(frozen=True)
class Statement:
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]

    @classmethod
    def of(cls, raw: dict[str, Any], resolver: Resolver) -> Statement:
        for unsupported in ("NotAction", "NotResource"):
            if unsupported in raw:
                raise ValueError(f"{unsupported} is not evaluated locally: {raw}")
        return cls(
            effect=str(raw.get("Effect", "Allow")),
            actions=tuple(str(a) for a in _listed(raw["Action"])),
            resources=tuple(str(resolver.resolve(r)) for r in _listed(raw.get("Resource", "*"))),
        )


@cache
def _glob(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"^{body}$", re.IGNORECASE if ignore_case else 0)


@dataclass
class Policy:
    """A function's expanded policy, evaluated as IAM does (explicit deny wins, else any allow)."""

    statements: list[Statement]

    def _matches(self, statement: Statement, action: str, resource: str) -> bool:
        return any(_glob(a, ignore_case=True).match(action) for a in statement.actions) and any(
            _glob(r, ignore_case=False).match(resource) for r in statement.resources
        )

    def allows(self, action: str, resource: str) -> bool:
        matched = [s for s in self.statements if self._matches(s, action, resource)]
        return bool(matched) and all(s.effect == "Allow" for s in matched)

    def allows_action(self, action: str) -> bool:
        """Whether some statement allows `action` on some resource (what moto can judge)."""
        return any(
            s.effect == "Allow" and any(_glob(a, ignore_case=True).match(action) for a in s.actions)
            for s in self.statements
        )

    def granted_actions(self) -> set[str]:
        return {a for s in self.statements if s.effect == "Allow" for a in s.actions}


def policies(resolver: Resolver, template_path: Path = TEMPLATE) -> dict[str, Policy]:
    return {
        name: Policy([Statement.of(s, resolver) for s in raw])
        for name, raw in function_policies(template_path).items()
    }


# ---------------------------------------------------------------------- operations -> IAM


@dataclass(frozen=True)
class Need:
    """One IAM authorization that an AWS call requires."""

    action: str
    resource: str


class Arns:
    """Resource ARNs from API parameters, in one account and region."""

    def __init__(self, region: str, account: str, kms_aliases: dict[str, str] | None = None):
        self.region = region
        self.account = account
        self.kms_aliases = kms_aliases or {}

    def table(self, name: str, index: str | None = None) -> str:
        arn = f"arn:aws:dynamodb:{self.region}:{self.account}:table/{name}"
        return f"{arn}/index/{index}" if index else arn

    def queue(self, url: str) -> str:
        name = urlparse(url).path.rstrip("/").rsplit("/", 1)[-1]
        return f"arn:aws:sqs:{self.region}:{self.account}:{name}"

    def key(self, key_id: str | None) -> str:
        if not key_id:
            return "*"  # Decrypt without KeyId: no key to judge, so only a `*` grant passes
        if key_id.startswith("arn:"):
            return self.kms_aliases.get(key_id, key_id)
        if key_id.startswith("alias/"):
            return self.kms_aliases.get(
                key_id, f"arn:aws:kms:{self.region}:{self.account}:{key_id}"
            )
        return f"arn:aws:kms:{self.region}:{self.account}:key/{key_id}"

    def identity(self, address: str) -> str:
        return f"arn:aws:ses:{self.region}:{self.account}:identity/{address}"


def _sender(params: dict[str, Any]) -> str:
    source = params.get("Source") or params.get("FromEmailAddress")
    if not source:
        raw = params.get("RawMessage", {}).get("Data", b"")
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        match = re.search(r"^From:\s*(.+)$", text, re.MULTILINE | re.IGNORECASE)
        source = match.group(1) if match else ""
    match = re.search(r"<([^>]+)>", source)
    return (match.group(1) if match else source).strip()


def needs(service: str, operation: str, params: dict[str, Any], arns: Arns) -> list[Need]:
    """The IAM actions and resources AWS authorizes for one call."""
    prefix = _PREFIX.get(service, service)
    if service == "dynamodb":
        if operation in ("BatchWriteItem", "BatchGetItem"):
            return [
                Need(f"dynamodb:{operation}", arns.table(t)) for t in params.get("RequestItems", {})
            ]
        if operation == "TransactWriteItems":
            found = []
            for item in params.get("TransactItems", []):
                ((kind, body),) = item.items()
                found.append(Need(f"dynamodb:{_TRANSACT[kind]}", arns.table(body["TableName"])))
            return found
        if operation == "TransactGetItems":
            return [
                Need("dynamodb:GetItem", arns.table(i["Get"]["TableName"]))
                for i in params.get("TransactItems", [])
            ]
        table = params.get("TableName")
        resource = arns.table(table, params.get("IndexName")) if table else "*"
        return [Need(f"dynamodb:{operation}", resource)]
    if service == "sqs":
        resource = arns.queue(params["QueueUrl"]) if "QueueUrl" in params else "*"
        if operation == "GetQueueUrl":
            resource = f"arn:aws:sqs:{arns.region}:{arns.account}:{params.get('QueueName')}"
        return [Need(f"sqs:{_SQS_ACTIONS.get(operation, operation)}", resource)]
    if service == "s3":
        bucket = params.get("Bucket")
        action = f"s3:{_S3_ACTIONS.get(operation, operation)}"
        if operation == "DeleteObjects":
            return [
                Need(action, f"arn:aws:s3:::{bucket}/{o['Key']}")
                for o in params.get("Delete", {}).get("Objects", [])
            ]
        if "Key" in params:
            found = [Need(action, f"arn:aws:s3:::{bucket}/{params['Key']}")]
            if operation in ("CopyObject", "UploadPartCopy"):
                source = params["CopySource"]
                if isinstance(source, str):
                    source_arn = source.lstrip("/").split("?", 1)[0]
                else:
                    source_arn = f"{source['Bucket']}/{source['Key']}"
                found = [
                    Need("s3:PutObject", f"arn:aws:s3:::{bucket}/{params['Key']}"),
                    Need("s3:GetObject", f"arn:aws:s3:::{source_arn}"),
                ]
            return found
        return [Need(action, f"arn:aws:s3:::{bucket}" if bucket else "*")]
    if service == "kms":
        return [Need(f"kms:{operation}", arns.key(params.get("KeyId")))]
    if service in ("ses", "sesv2") and operation in ("SendRawEmail", "SendEmail"):
        return [Need(f"ses:{operation}", arns.identity(_sender(params)))]
    if service == "sns" and "TopicArn" in params:
        return [Need(f"sns:{operation}", str(params["TopicArn"]))]
    return [Need(f"{prefix}:{operation}", "*")]


@cache
def _operations(service: str) -> tuple[str, ...]:
    import botocore.session

    return tuple(botocore.session.get_session().get_service_model(service).operation_names)


def moto_actions(policy: Policy) -> list[str]:
    """The action names moto checks for calls this policy allows (resources widened to `*`)."""
    if _recording_only():
        return ["*"]
    return list(_moto_actions(frozenset(policy.granted_actions())))


@cache
def _moto_actions(actions: frozenset[str]) -> tuple[str, ...]:
    policy = Policy([Statement("Allow", tuple(sorted(actions)), ("*",))])
    granted = set(actions)
    probe = Arns("eu-west-1", "000000000000")
    samples: dict[str, dict[str, Any]] = {
        "TransactWriteItems": {"TransactItems": []},
        "CopyObject": {"Bucket": "b", "Key": "k", "CopySource": "b/k"},
        "UploadPartCopy": {"Bucket": "b", "Key": "k", "CopySource": "b/k"},
        "DeleteObjects": {"Bucket": "b", "Delete": {"Objects": [{"Key": "k"}]}},
    }
    for service in ("dynamodb", "sqs", "s3", "kms", "ses", "sns"):
        prefix = _PREFIX.get(service, service)
        if not any(a.lower().startswith(prefix + ":") or a == "*" for a in granted):
            continue
        for operation in _operations(service):
            params = samples.get(operation, {"Bucket": "b", "Key": "k", "TableName": "t"})
            if operation in ("TransactWriteItems",):
                required = [f"dynamodb:{a}" for a in _TRANSACT.values()]
                ok = any(policy.allows_action(a) for a in required)
            elif operation == "TransactGetItems":
                ok = policy.allows_action("dynamodb:GetItem")
            else:
                required = [n.action for n in needs(service, operation, params, probe)]
                ok = bool(required) and all(policy.allows_action(a) for a in required)
            if ok:
                granted.add(f"{prefix}:{operation}")
    return tuple(sorted(granted))


# ---------------------------------------------------------------------- enforcement at run time


def _recording_only() -> bool:
    """SM_IAM_ENFORCE=record: note refusals without raising (to survey what code needs)."""
    return os.environ.get("SM_IAM_ENFORCE", "on") == "record"


@dataclass
class Role:
    function: str
    arn: str
    policy: Policy
    credentials: Any  # botocore Credentials of the assumed role
    calls: dict[tuple[str, str], int] = field(default_factory=dict)
    denied: list[tuple[str, str, str]] = field(default_factory=list)


class Enforcement:
    """The roles of one provisioned stack, and the hooks that make every function use its own."""

    def __init__(self, roles: dict[str, Role], arns: Arns, names: list[tuple[str, str]]):
        self.roles = roles
        self.arns = arns
        # (physical name, logical id), longest first, for the table's symbolic ARNs.
        self.names = sorted(names, key=lambda pair: -len(pair[0]))
        self._lock = threading.Lock()
        # Told of each refusal: (function, operation, action, resource).
        self.on_denied: Any = None
        # Where every function call is written, one JSON line each (`calls.CallLog`).
        self.call_log: Any = None

    def role_of_current_call(self) -> Role | None:
        from success_metrics import observability

        name = observability.current_function()
        if name is None:
            return None
        role = self.roles.get(name)
        if role is None:
            raise KeyError(f"{name!r} is not a function of the template: it has no role")
        return role

    # botocore hooks ---------------------------------------------------------------

    def before_parameter_build(
        self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any
    ) -> None:
        role = self.role_of_current_call()
        if role is None:
            return
        context["sm_role"] = role
        service = model.service_model.service_name
        if self.call_log is not None:
            self.call_log.write(role.function, service, model.name, params)
        surveying = _recording_only()
        for need in needs(service, model.name, params, self.arns):
            if need.action in ALWAYS_ALLOWED:
                continue
            allowed = role.policy.allows(need.action, need.resource)
            with self._lock:
                if allowed or surveying:  # the table holds what the code needs, not refusals
                    key = (need.action, need.resource)
                    role.calls[key] = role.calls.get(key, 0) + 1
                if not allowed:
                    role.denied.append((need.action, need.resource, model.name))
            if not allowed and not surveying:
                from botocore.exceptions import ClientError

                if self.on_denied is not None:
                    self.on_denied(role.function, model.name, need.action, need.resource)
                code = "AccessDenied" if service in ("s3", "sqs") else "AccessDeniedException"
                raise ClientError(
                    {
                        "Error": {
                            "Code": code,
                            "Message": f"User: {role.arn}/{role.function} is not authorized to "
                            f"perform: {need.action} on resource: {need.resource} because no "
                            "identity-based policy allows the action",
                        },
                        "ResponseMetadata": {"HTTPStatusCode": 403},
                    },
                    model.name,
                )

    def before_sign(self, request: Any, **_: Any) -> None:
        role = request.context.get("sm_role")
        if role is None:
            role = self.role_of_current_call()
        if role is not None:
            request.context.setdefault("signing", {})["request_credentials"] = role.credentials

    # reporting --------------------------------------------------------------------

    def symbolic(self, resource: str) -> str:
        """A recorded ARN with physical names replaced by `${LogicalId}` (stable across runs);
        S3 object keys are cut to their first folder (`exports/*`), which policies scope."""
        resource = s3_folder(resource)
        for value, logical in self.names:
            if value in resource:
                resource = resource.replace(value, "${" + logical + "}")
        return resource.replace(self.arns.region, "${AWS::Region}").replace(
            self.arns.account, "${AWS::AccountId}"
        )

    def table(self) -> dict[str, list[dict[str, str]]]:
        report: dict[str, list[dict[str, str]]] = {}
        for name, role in sorted(self.roles.items()):
            seen = sorted({(a, self.symbolic(r)) for (a, r) in role.calls})
            report[name] = [{"action": a, "resource": r} for a, r in seen]
        return report


def s3_folder(resource: str) -> str:
    """An object ARN cut to its first folder: `arn:aws:s3:::b/exports/org/x.csv` ->
    `arn:aws:s3:::b/exports/*` (what the table records and policies scope)."""
    if resource.startswith("arn:aws:s3:::") and "/" in resource:
        bucket, _, key = resource.removeprefix("arn:aws:s3:::").partition("/")
        folder = key.split("/", 1)[0] + "/*" if "/" in key else key
        return f"arn:aws:s3:::{bucket}/{folder}"
    return resource


_installed: list[Enforcement] = []


def _dispatch(hook: str) -> Any:
    def handler(**kwargs: Any) -> None:
        if _installed:
            getattr(_installed[-1], hook)(**kwargs)

    handler.__name__ = f"sm_iam_{hook}"
    return handler


_HOOKS = (
    ("before-parameter-build", _dispatch("before_parameter_build")),
    ("before-sign", _dispatch("before_sign")),
)


def install_hooks() -> None:
    """Register the hooks in every botocore session created from now on (idempotent)."""
    import botocore.handlers

    for event, handler in _HOOKS:
        if (event, handler) not in botocore.handlers.BUILTIN_HANDLERS:
            botocore.handlers.BUILTIN_HANDLERS.append((event, handler))
    _patch_thread_pools()


def _patch_thread_pools() -> None:
    """Pool threads run with the submitting thread's context, as every thread of a Lambda
    function runs with its role."""
    from concurrent.futures import ThreadPoolExecutor

    if getattr(ThreadPoolExecutor.submit, "_sm_context", False):
        return
    original = ThreadPoolExecutor.submit

    def submit(self: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        return original(self, contextvars.copy_context().run, fn, *args, **kwargs)

    submit._sm_context = True  # type: ignore[attr-defined]
    ThreadPoolExecutor.submit = submit  # type: ignore[method-assign]


@contextmanager
def acting_as(function: str) -> Iterator[None]:
    """Work in this block is the function's own: its AWS calls go out under its role, its
    caches are its own (the SQS poller receiving for it, a test calling its logic directly)."""
    from success_metrics import observability

    with observability.as_function(function):
        yield


def admin_session(session: Any) -> dict[str, str]:
    """Create the operator (an admin IAM user) while authorization is still off; its keys."""
    iam = session.client("iam")
    iam.create_user(UserName=ADMIN_USER)
    iam.put_user_policy(
        UserName=ADMIN_USER,
        PolicyName="administrator",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            }
        ),
    )
    key = iam.create_access_key(UserName=ADMIN_USER)["AccessKey"]
    return {
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }


def authorization(enabled: bool) -> None:
    """Turn moto's IAM authorization on or off for every request from now on."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0 if enabled else float("inf")
    ActionAuthenticatorMixin.request_count = 0
    _serve_presigned_urls(ActionAuthenticatorMixin)


def _serve_presigned_urls(mixin: Any) -> None:
    """moto cannot authenticate a presigned URL with authorization on (it looks for an
    Authorization header and fails with a KeyError). The recorder judged the URL when it was
    made (s3:GetObject on that object, by the function that presigned it), so moto serves it."""
    original = mixin._authenticate_and_authorize_s3_action
    if getattr(original, "_sm_presigned", False):
        return

    def check(self: Any, bucket_name: str | None = None, key_name: str | None = None) -> None:
        query = getattr(self, "querystring", None) or {}
        if "X-Amz-Signature" in query and "Authorization" not in self.headers:
            return None
        return original(self, bucket_name, key_name)  # type: ignore[no-any-return]

    check._sm_presigned = True  # type: ignore[attr-defined]
    mixin._authenticate_and_authorize_s3_action = check


def enforce(
    session: Any,
    resolver: Resolver,
    physical: dict[str, dict[str, str]],
    *,
    prefix: str,
    region: str,
    account: str,
    template_path: Path = TEMPLATE,
    overrides: dict[str, list[dict[str, Any]]] | None = None,
) -> Enforcement:
    """Create every function's role in the emulator, assume it, and route its calls through it.

    `overrides` replaces a function's raw statements (the tests remove one to see it bite).
    """
    from botocore.credentials import Credentials

    raw = function_policies(template_path)
    raw.update(overrides or {})
    iam = session.client("iam", region_name=region)
    sts = session.client("sts", region_name=region)
    caller = sts.get_caller_identity()["Arn"]
    aliases = {}
    names: list[tuple[str, str]] = []
    name_attribute = {
        "AWS::DynamoDB::Table": "Ref",
        "AWS::S3::Bucket": "Ref",
        "AWS::KMS::Key": "Ref",
        "AWS::SQS::Queue": "QueueName",
        "AWS::SNS::Topic": "TopicName",
    }
    for logical, resource in load(template_path)["Resources"].items():
        attribute = name_attribute.get(resource["Type"])
        if attribute and logical in physical:
            names.append((physical[logical][attribute], logical))
        if resource["Type"] == "AWS::KMS::Alias" and logical in physical:
            target = str(resolver.resolve(resource["Properties"]["TargetKeyId"]))
            name = str(resolver.resolve(resource["Properties"]["AliasName"]))
            aliases[name] = Arns(region, account).key(target)
    arns = Arns(region, account, aliases)
    roles: dict[str, Role] = {}
    for function, statements in raw.items():
        policy = Policy([Statement.of(s, resolver) for s in statements])
        name = f"{prefix}-{function}"[:64]
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com", "AWS": caller},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        arn = iam.create_role(
            RoleName=name, AssumeRolePolicyDocument=json.dumps(trust), MaxSessionDuration=43200
        )["Role"]["Arn"]
        iam.put_role_policy(
            RoleName=name,
            PolicyName="template-actions",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Action": moto_actions(policy), "Resource": "*"}
                    ],
                }
            ),
        )
        got = sts.assume_role(RoleArn=arn, RoleSessionName=function[:64], DurationSeconds=43200)
        creds = got["Credentials"]
        roles[function] = Role(
            function=function,
            arn=got["AssumedRoleUser"]["Arn"].rsplit("/", 1)[0],
            policy=policy,
            credentials=Credentials(
                creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]
            ),
        )
    enforcement = Enforcement(roles, arns, names)
    install_hooks()
    _installed.append(enforcement)
    return enforcement


def withdraw(enforcement: Enforcement) -> None:
    if enforcement in _installed:
        _installed.remove(enforcement)


def secure(
    prefix: str,
    template_path: Path = TEMPLATE,
    *,
    visibility_cap: int | None = None,
    overrides: dict[str, list[dict[str, Any]]] | None = None,
    after_provision: Any = None,
) -> tuple[Any, Enforcement, dict[str, str]]:
    """Provision the template on the emulator with IAM enforced: the operator's admin user is
    created while authorization is off, then everything, provisioning included, is
    authenticated. Returns the stack, its enforcement and the operator's credentials, which
    the caller puts in the environment (they are the process's default credentials)."""
    import boto3

    from devstack import provision as provisioning

    authorization(False)
    operator = admin_session(boto3.session.Session(region_name=provisioning.REGION))
    authorization(True)
    session = boto3.session.Session(
        aws_access_key_id=operator["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=operator["AWS_SECRET_ACCESS_KEY"],
        region_name=provisioning.REGION,
    )
    stack = provisioning.provision(
        prefix=prefix,
        template=load(template_path),
        session=session,
        visibility_cap=visibility_cap,
    )
    if after_provision:  # the persisted data put back, before the roles name its resources
        after_provision(stack, session)
    enforcement = enforce(
        session,
        stack.resolver,
        stack.physical,
        prefix=prefix,
        region=provisioning.REGION,
        account=provisioning.ACCOUNT,
        template_path=template_path,
        overrides=overrides,
    )
    return stack, enforcement, operator


# ---------------------------------------------------------------------- the recorded table

ROOT = TEMPLATE.parent
_observed: dict[str, set[tuple[str, str]]] = {}


def calls_dir() -> Path:
    return Path(os.environ.get("SM_IAM_CALLS_DIR", ROOT / ".local" / "iam-calls"))


def record(enforcement: Enforcement) -> Path:
    """Add what the stack's functions called to this process's file of the run's table."""
    for function, rows in enforcement.table().items():
        _observed.setdefault(function, set()).update((r["action"], r["resource"]) for r in rows)
    directory = calls_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{os.getpid()}.json"
    body = {
        f: [{"action": a, "resource": r} for a, r in sorted(rows)] for f, rows in _observed.items()
    }
    path.write_text(json.dumps(body, indent=1, sort_keys=True))
    return path


def check_and_record(enforcement: Enforcement, where: str) -> None:
    """Record the calls; fail if any function was refused one (a missing permission)."""
    record(enforcement)
    if _recording_only():
        return
    denied = sorted(
        {(r.function, a, res, op) for r in enforcement.roles.values() for a, res, op in r.denied}
    )
    for role in enforcement.roles.values():
        role.denied.clear()
    if denied:
        lines = "\n".join(f"  {f}: {op} needs {a} on {res}" for f, a, res, op in denied)
        raise AssertionError(
            f"{where}: AWS would refuse these calls (template.yaml lacks them):\n{lines}"
        )
