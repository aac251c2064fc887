# Conditions are written with functions (contains, can, regex, alltrue), not operators:
# the embedded Terraform's config loader that the tests use cannot serialize operator
# expressions (==, >=, !, &&, +), so a module holding one cannot be checked.

variable "job_name" {
  description = "Job name ([job] name); the composer-job label and part of each description."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,62}$", var.job_name))
    error_message = "job_name must be lowercase letters, digits and '-', at most 63 characters."
  }
}

variable "run_id" {
  description = "Run id: every resource's name starts with composer-<run_id>-, the network tag is composer-<run_id>, and the composer-run-id label carries it."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,42}[a-z0-9])?$", var.run_id))
    error_message = "run_id must be lowercase letters, digits and '-', at most 44 characters, not starting or ending with '-'."
  }
}

variable "node_count" {
  description = "Number of instances (nodes)."
  type        = number
  validation {
    condition     = can(regex("^[1-9][0-9]*$", tostring(var.node_count)))
    error_message = "node_count must be a whole number of at least 1."
  }
}

variable "slots_per_node" {
  description = "MPI slots each node offers; reported in the inventory."
  type        = number
  default     = 1
  validation {
    condition     = can(regex("^[1-9][0-9]*$", tostring(var.slots_per_node)))
    error_message = "slots_per_node must be a whole number of at least 1."
  }
}

variable "gpus_per_node" {
  description = "GPUs each node has (bundled with the machine type or attached as accelerator); any GPU makes host maintenance terminate the node."
  type        = number
  default     = 0
  validation {
    condition     = can(regex("^[0-9]+$", tostring(var.gpus_per_node)))
    error_message = "gpus_per_node must be a whole number."
  }
}

variable "region" {
  description = "Region of zone; the placement policy is made there."
  type        = string
}

variable "zone" {
  description = "Zone of every node (the one preflight chose from the spec's zones)."
  type        = string
}

variable "machine_type" {
  description = "Machine type of every node (the one preflight chose from the spec's machine_types)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9]*-[a-z0-9-]+$", var.machine_type))
    error_message = "machine_type must be a Compute Engine machine type such as n2-standard-8."
  }
}

variable "image" {
  description = "The image every node boots, pinned at lock time: one image's self link (projects/P/global/images/NAME, or its full URL), never a family."
  type        = string
  validation {
    condition     = can(regex("(^|/)projects/[^/]+/global/images/[a-z][-a-z0-9]*$", var.image))
    error_message = "image must be an image's self link (projects/P/global/images/NAME), not a family."
  }
}

variable "accelerator" {
  description = "GPUs attached to each node as guest_accelerator ({type, count}); null for CPU-only nodes and for machine types whose GPUs come with the type (A2, A3, A4, G2, ...)."
  type = object({
    type  = string
    count = number
  })
  default = null
}

variable "provisioning" {
  description = "\"standard\", or \"spot\" for Spot VMs, which Compute Engine deletes when it preempts them."
  type        = string
  default     = "standard"
  validation {
    condition     = contains(["standard", "spot"], var.provisioning)
    error_message = "provisioning must be \"standard\" or \"spot\"."
  }
}

variable "placement" {
  description = "\"compact\": the nodes share one compact placement policy (COLLOCATED, on a low-latency network; only with two nodes or more); \"none\": no placement policy."
  type        = string
  default     = "none"
  validation {
    condition     = contains(["compact", "none"], var.placement)
    error_message = "placement must be \"compact\" or \"none\"."
  }
}

variable "boot_disk_gb" {
  description = "Size of each node's boot disk in GB (pd-balanced, or hyperdisk-balanced on series that take only Hyperdisk; deleted with the node)."
  type        = number
  default     = 100
  validation {
    condition     = can(regex("^([1-9][0-9]+)$", tostring(var.boot_disk_gb)))
    error_message = "boot_disk_gb must be a whole number of at least 10."
  }
}

variable "network" {
  description = "The VPC network of the nodes and of the firewall rules (self link or name)."
  type        = string
}

variable "subnetwork" {
  description = "The subnetwork of the nodes (self link); null: the network's subnetwork in the region (auto mode networks)."
  type        = string
  default     = null
}

variable "ssh_cidrs" {
  description = "IPv4 and IPv6 CIDR blocks that may reach port 22 of the nodes; nothing else reaches them from outside the run."
  type        = list(string)
  validation {
    condition     = can(var.ssh_cidrs[0])
    error_message = "ssh_cidrs must name at least one CIDR block."
  }
  validation {
    condition     = alltrue([for cidr in var.ssh_cidrs : can(cidrhost(cidr, 0))])
    error_message = "Every entry of ssh_cidrs must be an IPv4 or IPv6 CIDR block such as 203.0.113.0/24."
  }
}

variable "ssh_user" {
  description = "The login user: its only authorized key is authorized_key (metadata ssh-keys), and the node's work directory is its own."
  type        = string
  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,31}$", var.ssh_user))
    error_message = "ssh_user must be a POSIX user name (lowercase letters, digits, '_' and '-', at most 32 characters)."
  }
}

variable "authorized_key" {
  description = "Public key (OpenSSH format) of the run's client key; the only key the nodes accept."
  type        = string
  validation {
    condition     = can(regex("^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp[0-9]+) [A-Za-z0-9+/=]+( [^\n]*)?$", var.authorized_key))
    error_message = "authorized_key must be one OpenSSH public key on one line."
  }
}

variable "host_keys" {
  description = "Each node's host key pair, generated by composer, in rank order: {private (OpenSSH private key), public}. The startup script installs it, so clients pin the public half and never trust on first use."
  type = list(object({
    private = string
    public  = string
  }))
  sensitive = true
  validation {
    condition     = alltrue([for key in var.host_keys : can(regex("^ssh-ed25519 [A-Za-z0-9+/=]+( [A-Za-z0-9_.@-]+)?$", key.public))])
    error_message = "Every host key's public half must be an OpenSSH ed25519 public key (its comment letters, digits, '_', '.', '@', '-')."
  }
}

variable "labels" {
  description = "Extra labels on every labelled resource (the instances and their boot disks); composer's own composer-run-id, composer-job and composer-expires-at win over these."
  type        = map(string)
  default     = {}
  validation {
    condition     = alltrue([for key, value in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", key))])
    error_message = "Every label key must start with a lowercase letter and hold lowercase letters, digits, '_' and '-' (at most 63 characters)."
  }
  validation {
    condition     = alltrue([for key, value in var.labels : can(regex("^[a-z0-9_-]{0,63}$", value))])
    error_message = "Every label value must be lowercase letters, digits, '_' and '-' (at most 63 characters)."
  }
}

variable "expires_at" {
  description = "When the run's max_duration ends, as a label value (2026-11-27t12-14-05z, UTC), or \"none\": the composer-expires-at label, and part of each description."
  type        = string
  default     = "none"
  validation {
    condition     = can(regex("^(none|[0-9]{4}-[0-9]{2}-[0-9]{2}t[0-9]{2}-[0-9]{2}-[0-9]{2}z)$", var.expires_at))
    error_message = "expires_at must be \"none\" or a time such as 2026-11-27t12-14-05z."
  }
}

variable "max_run_seconds" {
  description = "Seconds each node may run (scheduling.max_run_duration, counted by Compute Engine from its start), after which Compute Engine deletes it; 0: no limit."
  type        = number
  default     = 0
  validation {
    condition     = can(regex("^[0-9]+$", tostring(var.max_run_seconds)))
    error_message = "max_run_seconds must be a whole number of seconds (0 for no limit)."
  }
}

variable "packages" {
  description = "OS packages (Debian/Ubuntu names) the startup script installs where the image lacks what they provide (for the launcher and the container runtime)."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for name in var.packages : can(regex("^[a-z0-9][a-z0-9.+-]+$", name))])
    error_message = "Every entry of packages must be a package name (lowercase letters, digits, '.', '+', '-')."
  }
}

variable "pip_packages" {
  description = "Python packages, pinned (name==version), the startup script installs into /opt/composer/venv (the mpi launcher's Open MPI 5 and mpi4py)."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for spec in var.pip_packages : can(regex("^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!_-]+$", spec))])
    error_message = "Every entry of pip_packages must be pinned as name==version."
  }
}
