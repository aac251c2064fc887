# Rendered by composer for job "nodes-256"; edit job.toml, not this file.
terraform {
  required_version = ">= 1.4"
}
