variable "run_id" {
  description = "Run id; every node's files and processes carry it so a run's leftovers can be found."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]*$", var.run_id))
    error_message = "run_id must be letters, digits, '.', '_' or '-'."
  }
}

variable "node_count" {
  description = "Number of nodes, each one sshd on its own loopback address."
  type        = number
  validation {
    condition     = var.node_count >= 1 && var.node_count == floor(var.node_count)
    error_message = "node_count must be a whole number of at least 1."
  }
}

variable "slots_per_node" {
  description = "MPI slots each node offers; reported in the inventory."
  type        = number
  default     = 1
  validation {
    condition     = var.slots_per_node >= 1
    error_message = "slots_per_node must be at least 1."
  }
}

variable "addresses" {
  description = "One loopback address (127.0.0.0/8) per node, in rank order."
  type        = list(string)
  validation {
    condition     = alltrue([for a in var.addresses : can(regex("^127\\.([0-9]{1,3}\\.){2}[0-9]{1,3}$", a))])
    error_message = "Local nodes only use loopback addresses (127.0.0.0/8)."
  }
}

variable "port" {
  description = "TCP port every node's sshd listens on (each on its own address)."
  type        = number
  validation {
    condition     = var.port >= 1 && var.port <= 65535
    error_message = "port must be between 1 and 65535."
  }
}

variable "work_dir" {
  description = "Absolute directory holding node-<rank>/ for each node: host key, sshd config, pid file, logs and the node's work directory."
  type        = string
  validation {
    condition     = startswith(var.work_dir, "/")
    error_message = "work_dir must be an absolute path."
  }
}

variable "authorized_key" {
  description = "Public key (OpenSSH format) of the run's client key; the only key the nodes accept."
  type        = string
}

variable "sshd_path" {
  description = "Absolute path of the OpenSSH sshd binary."
  type        = string
  default     = "/usr/sbin/sshd"
}

variable "session_env" {
  description = "Environment every session on a node starts with (for instance PATH and VIRTUAL_ENV of the caller)."
  type        = map(string)
  default     = {}
}
