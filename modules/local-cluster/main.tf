locals {
  script = abspath("${path.module}/scripts/node.sh")
  nodes = [
    for rank in range(var.node_count) : {
      rank     = rank
      name     = "node-${rank}"
      address  = var.addresses[rank]
      node_dir = "${var.work_dir}/node-${rank}"
    }
  ]
  session_env = join("\n", [for k in sort(keys(var.session_env)) : "${k}=${var.session_env[k]}"])
}

resource "terraform_data" "node" {
  count = var.node_count

  input = {
    run_id   = var.run_id
    rank     = local.nodes[count.index].rank
    address  = local.nodes[count.index].address
    port     = var.port
    node_dir = local.nodes[count.index].node_dir
    script   = local.script
    python   = var.python_path
  }

  lifecycle {
    precondition {
      condition     = length(var.addresses) >= var.node_count && length(var.host_keys) >= var.node_count
      error_message = "addresses and host_keys must hold one entry per node."
    }
  }

  # The script path goes to sh as one argument, never through a shell command line:
  # a work dir holding a space, a quote or a "$" is data.
  provisioner "local-exec" {
    interpreter = ["/bin/sh", self.input.script]
    command     = "start"
    environment = {
      NODE_RUN_ID         = var.run_id
      NODE_RANK           = self.input.rank
      NODE_ADDRESS        = self.input.address
      NODE_PORT           = self.input.port
      NODE_DIR            = self.input.node_dir
      NODE_SSHD           = var.sshd_path
      NODE_AUTHORIZED_KEY = var.authorized_key
      NODE_SESSION_ENV    = local.session_env
      NODE_PYTHON         = self.input.python
    }
  }

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["/bin/sh", self.input.script]
    command     = "stop"
    environment = {
      NODE_RUN_ID = self.input.run_id
      NODE_DIR    = self.input.node_dir
      NODE_PYTHON = self.input.python
    }
  }
}
