# Rendered by composer for job "state-s3"; edit job.toml, not this file.
module "cluster" {
  source = "./modules/local-cluster"

  run_id         = var.run_id
  node_count     = var.nodes
  slots_per_node = var.slots_per_node
  addresses      = var.addresses
  port           = var.port
  work_dir       = var.work_dir
  authorized_key = var.authorized_key
  host_keys      = var.host_keys
  sshd_path      = var.sshd_path
  session_env    = var.session_env
  python_path    = var.python_path
}
