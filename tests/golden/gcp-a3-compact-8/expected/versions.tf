# Rendered by composer for job "gcp-a3-compact-8"; edit job.toml, not this file.
terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "8.7.0"
    }
  }
}
