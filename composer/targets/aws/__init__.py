"""The AWS target: EC2 instances rendered as a Terraform module (``modules/aws-cluster``)."""
