# Rendered by composer for job "aws-g5-spot-4"; edit job.toml, not this file.
terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "6.62.0"
    }
  }
}
