# Rendered by composer for job "gcp-cpu-1"; edit job.toml, not this file.
terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "8.7.0"
    }
  }
}
