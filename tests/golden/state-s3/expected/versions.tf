# Rendered by composer for job "state-s3"; edit job.toml, not this file.
terraform {
  required_version = ">= 1.4"

  # Where the state lives comes from `terraform init -backend-config` ([state] in
  # job.toml); credentials only from the environment.
  backend "s3" {}
}
