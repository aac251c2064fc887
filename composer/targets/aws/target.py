"""The AWS target: EC2 instances from ``modules/aws-cluster``.

So far only what the spec checker needs: the name, the module, the node limit and the
``[aws]`` section (``composer/targets/aws/spec.py``). Preflight, the run's var file and
the session environment are still abstract.
"""

from __future__ import annotations

from composer.targets.aws.spec import AWS
from composer.targets.base import Target


class AwsTarget(Target):
    name = "aws"
    modules = ("aws-cluster",)
    max_nodes = 1000
    section = AWS
