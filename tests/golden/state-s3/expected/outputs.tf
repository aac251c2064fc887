# Rendered by composer for job "state-s3"; edit job.toml, not this file.

output "nodes" {
  description = "Node inventory in rank order; composer reads it after apply."
  value       = module.cluster.nodes
}

output "cluster" {
  description = "What was asked for, as applied."
  value = {
    job_name       = var.job_name
    nodes          = var.nodes
    slots_per_node = var.slots_per_node
    gpus_per_node  = var.gpus_per_node
  }
}
