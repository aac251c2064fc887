# Rendered by composer for job "hello-mpi"; edit job.toml, not this file.
terraform {
  required_version = ">= 1.4"
}
