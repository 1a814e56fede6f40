"""Creating the template's resources on the AWS emulator (moto), from their properties.

Supported types are the ones the product uses; an unsupported type that a function's
environment refers to fails loudly instead of being skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3

from devstack.template import Resolver, functions, load

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account
# Resource types with no local counterpart: they matter only to a real deployment.
IGNORED_TYPES = {
    "AWS::Serverless::LayerVersion",
    "AWS::Serverless::HttpApi",
    "AWS::Logs::LogGroup",
    "AWS::KMS::Alias",
    "AWS::CloudWatch::Alarm",
    "AWS::CloudWatch::Dashboard",
    "AWS::Lambda::Permission",
    # moto does not evaluate queue policies: SNS delivers to the queue without one.
    "AWS::SQS::QueuePolicy",
    # The emulator speaks plain HTTP, and moto enforces bucket policies: an HTTPS-only policy
    # would refuse every local request.
    "AWS::S3::BucketPolicy",
}


@dataclass
class Stack:
    template: dict[str, Any]
    resolver: Resolver
    physical: dict[str, dict[str, str]]

    def environment(self, logical_id: str) -> dict[str, str]:
        """A function's environment variables, resolved the way CloudFormation would."""
        for function in functions(self.template):
            if function.logical_id == logical_id:
                return {k: str(self.resolver.resolve(v)) for k, v in function.environment.items()}
        raise KeyError(logical_id)

    def all_environment(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for function in functions(self.template):
            env.update(self.environment(function.logical_id))
        return env


class _Provisioner:
    def __init__(
        self, template: dict[str, Any], prefix: str, session: Any, visibility_cap: int | None
    ) -> None:
        self.template = template
        self.visibility_cap = visibility_cap
        self.prefix = prefix
        self.session = session
        self.physical: dict[str, dict[str, str]] = {}
        self.resolver = Resolver(
            template,
            self.physical,
            {
                "AWS::Region": REGION,
                "AWS::AccountId": ACCOUNT,
                "AWS::Partition": "aws",
                "AWS::URLSuffix": "amazonaws.com",
                "AWS::StackName": prefix,
            },
        )
        self._creating: set[str] = set()
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service, region_name=REGION)
        return self._clients[service]

    def run(self) -> Stack:
        for logical_id in self.template["Resources"]:
            self.ensure(logical_id)
        return Stack(self.template, self.resolver, self.physical)

    def ensure(self, logical_id: str) -> None:
        if logical_id in self.physical or logical_id in self._creating:
            return
        resource = self.template["Resources"][logical_id]
        self._creating.add(logical_id)
        self._dependencies(resource.get("Properties", {}))
        creator = getattr(self, "_" + resource["Type"].replace("::", "_").lower(), None)
        if creator is not None:
            self.physical[logical_id] = creator(logical_id, resource.get("Properties", {}))
        elif resource["Type"] == "AWS::Serverless::Function":
            name = f"{self.prefix}-{logical_id}"
            self.physical[logical_id] = {
                "Ref": name,
                "Arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}",
            }
        else:
            self.physical[logical_id] = {"Ref": f"{self.prefix}-{logical_id}"}
        self._creating.discard(logical_id)

    def _dependencies(self, value: Any) -> None:
        """Create what a resource refers to first (Ref, GetAtt, Sub)."""
        resources = self.template["Resources"]
        if isinstance(value, dict):
            if "Ref" in value and value["Ref"] in resources:
                self.ensure(value["Ref"])
            elif "Fn::GetAtt" in value and value["Fn::GetAtt"][0] in resources:
                self.ensure(value["Fn::GetAtt"][0])
            elif "Fn::Sub" in value:
                text = (
                    value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
                )
                for name in resources:
                    if "${" + name + "}" in text or "${" + name + "." in text:
                        self.ensure(name)
            for item in value.values():
                self._dependencies(item)
        elif isinstance(value, list):
            for item in value:
                self._dependencies(item)

    # -------------------------------------------------------------- resource types

    def _aws_dynamodb_table(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        props = self.resolver.resolve(props)
        name = props.get("TableName") or f"{self.prefix}-{logical_id}"
        ddb = self.client("dynamodb")
        kwargs: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        if kwargs["BillingMode"] == "PROVISIONED":
            kwargs["ProvisionedThroughput"] = props.get(
                "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
            )
        indexes = []
        for index in props.get("GlobalSecondaryIndexes", []):
            spec = {k: index[k] for k in ("IndexName", "KeySchema", "Projection")}
            if kwargs["BillingMode"] == "PROVISIONED":
                spec["ProvisionedThroughput"] = index["ProvisionedThroughput"]
            indexes.append(spec)
        if indexes:
            kwargs["GlobalSecondaryIndexes"] = indexes
        if props.get("StreamSpecification"):
            kwargs["StreamSpecification"] = {
                "StreamEnabled": True,
                "StreamViewType": props["StreamSpecification"]["StreamViewType"],
            }
        description = ddb.create_table(**kwargs)["TableDescription"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            ddb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
        found = {"Ref": name, "Arn": description["TableArn"]}
        if description.get("LatestStreamArn"):
            found["StreamArn"] = description["LatestStreamArn"]
        return found

    def _aws_sns_topic(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        props = self.resolver.resolve(props)
        name = props.get("TopicName") or f"{self.prefix}-{logical_id}"
        arn = self.client("sns").create_topic(Name=name)["TopicArn"]
        return {"Ref": arn, "Arn": arn, "TopicName": name}

    def _aws_sns_subscription(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        props = self.resolver.resolve(props)
        attributes = {}
        if props.get("RawMessageDelivery") is not None:
            attributes["RawMessageDelivery"] = str(props["RawMessageDelivery"]).lower()
        arn = self.client("sns").subscribe(
            TopicArn=props["TopicArn"],
            Protocol=props["Protocol"],
            Endpoint=props["Endpoint"],
            Attributes=attributes,
        )["SubscriptionArn"]
        return {"Ref": arn, "Arn": arn}

    def _aws_sqs_queue(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        props = self.resolver.resolve(props)
        name = props.get("QueueName") or f"{self.prefix}-{logical_id}"
        if props.get("FifoQueue") and not name.endswith(".fifo"):
            name += ".fifo"
        attributes: dict[str, str] = {}
        for key in (
            "VisibilityTimeout",
            "MessageRetentionPeriod",
            "DelaySeconds",
            "MaximumMessageSize",
            "ReceiveMessageWaitTimeSeconds",
            "FifoQueue",
            "ContentBasedDeduplication",
        ):
            if key in props:
                value = props[key]
                attributes[key] = str(value).lower() if isinstance(value, bool) else str(value)
        if self.visibility_cap is not None and "VisibilityTimeout" in attributes:
            attributes["VisibilityTimeout"] = str(
                min(int(attributes["VisibilityTimeout"]), self.visibility_cap)
            )
        if "RedrivePolicy" in props:
            attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
        sqs = self.client("sqs")
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        return {"Ref": url, "Arn": arn, "QueueName": name, "QueueUrl": url}

    def _aws_kms_key(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        key = self.client("kms").create_key(Description=str(props.get("Description", logical_id)))
        meta = key["KeyMetadata"]
        return {"Ref": meta["KeyId"], "Arn": meta["Arn"], "KeyId": meta["KeyId"]}

    def _aws_s3_bucket(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        props = self.resolver.resolve(props)
        name = props.get("BucketName") or f"{self.prefix}-{logical_id}".lower()
        s3 = self.client("s3")
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
        rules = props.get("LifecycleConfiguration", {}).get("Rules")
        if rules:
            s3.put_bucket_lifecycle_configuration(
                Bucket=name, LifecycleConfiguration={"Rules": [_lifecycle_rule(r) for r in rules]}
            )
        return {
            "Ref": name,
            "Arn": f"arn:aws:s3:::{name}",
            "DomainName": f"{name}.s3.amazonaws.com",
        }

    def _aws_ses_emailidentity(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        # SES sends only from verified identities; the emulator verifies on request.
        identity = str(self.resolver.resolve(props["EmailIdentity"]))
        self.client("ses").verify_email_identity(EmailAddress=identity)
        return {"Ref": identity}

    def _aws_sns_topic(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        arn = self.client("sns").create_topic(Name=f"{self.prefix}-{logical_id}")["TopicArn"]
        return {"Ref": arn, "TopicArn": arn, "TopicName": f"{self.prefix}-{logical_id}"}


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's lifecycle rule shape -> the S3 API's."""
    out: dict[str, Any] = {
        "ID": rule.get("Id", "rule"),
        "Status": rule.get("Status", "Enabled"),
        "Filter": {"Prefix": rule.get("Prefix", "")},
    }
    if "ExpirationInDays" in rule:
        out["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "AbortIncompleteMultipartUpload" in rule:
        out["AbortIncompleteMultipartUpload"] = {
            "DaysAfterInitiation": int(
                rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
            )
        }
    return out


def provision(
    prefix: str = "sm-local",
    template: dict[str, Any] | None = None,
    session: Any = None,
    visibility_cap: int | None = None,
) -> Stack:
    """Create every supported resource of the template and return how to reach them.

    `visibility_cap` shortens queue visibility timeouts (tests of redelivery use it).
    """
    template = template or load()
    unsupported = {
        r["Type"]
        for r in template["Resources"].values()
        if r["Type"] not in IGNORED_TYPES
        and r["Type"] != "AWS::Serverless::Function"
        and not hasattr(_Provisioner, "_" + r["Type"].replace("::", "_").lower())
    }
    if unsupported:
        raise NotImplementedError(f"the local stack cannot create {sorted(unsupported)}")
    return _Provisioner(template, prefix, session or boto3.session.Session(), visibility_cap).run()
