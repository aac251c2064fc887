# Rendered by composer for job "state-s3"; edit job.toml, not this file.
# Values from the job spec are in terraform.tfvars.json; the run-time values
# (run id, addresses, keys, paths) come from the run's own var file.

variable "job_name" {
  description = "Name of the job ([job] name)."
  type        = string
}

variable "nodes" {
  description = "Number of nodes ([cluster] nodes)."
  type        = number
}

variable "slots_per_node" {
  description = "MPI slots per node ([cluster] slots_per_node)."
  type        = number
}

variable "gpus_per_node" {
  description = "GPUs per node ([cluster] gpus_per_node); local nodes share the machine's GPUs."
  type        = number
}

variable "run_id" {
  description = "Run id, set per run."
  type        = string
}

variable "addresses" {
  description = "Loopback address of each node, leased per run."
  type        = list(string)
}

variable "port" {
  description = "SSH port of every node."
  type        = number
}

variable "work_dir" {
  description = "The run's node directory root on this machine."
  type        = string
}

variable "authorized_key" {
  description = "The run's client public key."
  type        = string
}

variable "host_keys" {
  description = "Host public key of each node, generated and pinned per run."
  type        = list(string)
}

variable "sshd_path" {
  description = "Absolute path of sshd."
  type        = string
}

variable "session_env" {
  description = "Environment of every session on a node."
  type        = map(string)
}

variable "python_path" {
  description = "Python 3 interpreter that runs each node's supervisor."
  type        = string
}
