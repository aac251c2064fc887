# Rendered by composer for job "ssh-4-nodes"; edit job.toml, not this file.
terraform {
  required_version = ">= 1.4"
}
