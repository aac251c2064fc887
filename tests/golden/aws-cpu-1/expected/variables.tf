# Rendered by composer for job "aws-cpu-1"; edit job.toml, not this file.
# Values from the job spec are in terraform.tfvars.json; the run-time values (run id,
# pinned AMI, type, zone and subnet, keys, expiry) come from the run's own var file,
# which is never part of this tree or of the run's record.

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
  description = "GPUs per node ([cluster] gpus_per_node); preflight checked the instance type has them."
  type        = number
}

variable "region" {
  description = "AWS region ([aws] region)."
  type        = string
}

variable "zones" {
  description = "Candidate availability zones, in order ([aws] zones; empty: every zone offering the first type)."
  type        = list(string)
}

variable "instance_types" {
  description = "Candidate instance types, first preferred ([aws] instance_types)."
  type        = list(string)
}

variable "image" {
  description = "The image as written ([aws] image: an AMI id or ssm:<parameter>); ami_id is what it resolved to."
  type        = string
}

variable "market" {
  description = "\"on-demand\" or \"spot\" ([aws] market)."
  type        = string
}

variable "max_spot_price" {
  description = "Highest spot price in USD per instance-hour ([aws] max_spot_price); null: the on-demand price."
  type        = string
}

variable "placement" {
  description = "\"cluster\" or \"none\" ([aws] placement)."
  type        = string
}

variable "efa" {
  description = "Elastic Fabric Adapter on every node ([aws] efa)."
  type        = bool
}

variable "root_volume_gb" {
  description = "Root volume size in GiB ([aws] root_volume_gb)."
  type        = number
}

variable "subnet_id" {
  description = "Subnet as written ([aws] subnet_id); null: a default subnet of the region's default VPC. subnet is the one chosen."
  type        = string
}

variable "ssh_cidrs" {
  description = "CIDR blocks that may reach port 22 ([aws] ssh_cidrs)."
  type        = list(string)
}

variable "ssh_user" {
  description = "Login user as written ([aws] ssh_user); null: from the image. login_user is the one resolved."
  type        = string
}

variable "tags" {
  description = "Extra tags on every resource ([aws] tags)."
  type        = map(string)
}

variable "packages" {
  description = "OS packages the boot step installs on every node (from [run] launcher and [container] runtime)."
  type        = list(string)
}

variable "pip_packages" {
  description = "Python packages, pinned, the boot step installs into /opt/composer/venv (Open MPI 5 and mpi4py for the mpi launcher)."
  type        = list(string)
}

# Per run (the run's var file).

variable "run_id" {
  description = "Run id, set per run."
  type        = string
}

variable "ami_id" {
  description = "The AMI image resolved to, pinned in lock.json."
  type        = string
}

variable "instance_type" {
  description = "The instance type preflight chose from instance_types."
  type        = string
}

variable "zone" {
  description = "The availability zone preflight chose (the subnet's zone)."
  type        = string
}

variable "subnet" {
  description = "The subnet id the nodes are launched in."
  type        = string
}

variable "login_user" {
  description = "The login user resolved for the image."
  type        = string
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
  description = "When the run's max_duration ends (RFC 3339, UTC), or \"none\"; tagged on every resource."
  type        = string
}

variable "expires_at_epoch" {
  description = "The same moment in Unix seconds (0: no limit); nodes power off a grace period after it."
  type        = number
}
