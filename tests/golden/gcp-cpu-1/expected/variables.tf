# Rendered by composer for job "gcp-cpu-1"; edit job.toml, not this file.
# Values from the job spec are in terraform.tfvars.json; the run-time values (run id,
# pinned image, machine type, zone and network, keys, expiry) come from the run's own var
# file, which is never part of this tree or of the run's record.

# From the job spec (terraform.tfvars.json).

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
  description = "GPUs per node ([cluster] gpus_per_node); preflight checked the machine type or accelerator gives them."
  type        = number
}

variable "project" {
  description = "Google Cloud project ([gcp] project)."
  type        = string
}

variable "region" {
  description = "Compute Engine region ([gcp] region)."
  type        = string
}

variable "zones" {
  description = "Candidate zones, in order ([gcp] zones; empty: every zone of the region)."
  type        = list(string)
}

variable "machine_types" {
  description = "Candidate machine types, first preferred ([gcp] machine_types)."
  type        = list(string)
}

variable "image" {
  description = "The image as written ([gcp] image: an image family or an image); image_self_link is what it resolved to."
  type        = string
}

variable "accelerator_type" {
  description = "GPU type attached to each node ([gcp] accelerator.type); null for CPU-only nodes and machine types whose GPUs come with them."
  type        = string
}

variable "provisioning" {
  description = "\"standard\" or \"spot\" ([gcp] provisioning)."
  type        = string
}

variable "placement" {
  description = "\"compact\" or \"none\" ([gcp] placement)."
  type        = string
}

variable "boot_disk_gb" {
  description = "Boot disk size in GB ([gcp] boot_disk_gb)."
  type        = number
}

variable "network" {
  description = "VPC network as written ([gcp] network); null: the project's default network. network_self_link is the one used."
  type        = string
}

variable "subnetwork" {
  description = "Subnetwork as written ([gcp] subnetwork); null: the network's subnetwork in the region. subnetwork_self_link is the one used."
  type        = string
}

variable "ssh_cidrs" {
  description = "CIDR blocks that may reach port 22 ([gcp] ssh_cidrs)."
  type        = list(string)
}

variable "ssh_user" {
  description = "Login user ([gcp] ssh_user); the run's client key is its only key."
  type        = string
}

variable "labels" {
  description = "Extra labels on every labelled resource ([gcp] labels)."
  type        = map(string)
}

variable "max_run_seconds" {
  description = "Seconds after which Compute Engine deletes each node (scheduling.max_run_duration: the boot allowance, [limits] max_duration and the grace); 0: no limit."
  type        = number
}

variable "packages" {
  description = "OS packages the startup script installs on every node (from [run] launcher and [container] runtime)."
  type        = list(string)
}

variable "pip_packages" {
  description = "Python packages, pinned, the startup script installs into /opt/composer/venv (Open MPI 5 and mpi4py for the mpi launcher)."
  type        = list(string)
}

# Per run (the run's var file).

variable "run_id" {
  description = "Run id, set per run."
  type        = string
}

variable "image_self_link" {
  description = "The image's self link the image resolved to, pinned in lock.json."
  type        = string
}

variable "machine_type" {
  description = "The machine type preflight chose from machine_types."
  type        = string
}

variable "zone" {
  description = "The zone preflight chose from zones."
  type        = string
}

variable "network_self_link" {
  description = "The VPC network the nodes and firewall rules are in, as preflight resolved it."
  type        = string
}

variable "subnetwork_self_link" {
  description = "The subnetwork the nodes are in, as preflight resolved it; null: the network's own in the region."
  type        = string
}

variable "accelerator" {
  description = "GPUs attached to each node ({type, count}); null when CPU-only or when the machine type comes with its GPUs."
  type = object({
    type  = string
    count = number
  })
}

variable "authorized_key" {
  description = "The run's client public key."
  type        = string
}

variable "host_keys" {
  description = "Each node's host key pair {private, public}, generated per run; the public halves are pinned."
  type = list(object({
    private = string
    public  = string
  }))
  sensitive = true
}

variable "expires_at" {
  description = "When the run's max_duration ends, as a label value (2026-11-27t12-14-05z, UTC), or \"none\"; on every resource."
  type        = string
}

variable "expires_at_epoch" {
  description = "The same moment in Unix seconds (0: no limit)."
  type        = number
}
