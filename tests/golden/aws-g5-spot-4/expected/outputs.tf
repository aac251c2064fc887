# Rendered by composer for job "aws-g5-spot-4"; edit job.toml, not this file.

output "nodes" {
  description = "Node inventory in rank order; composer reads it after apply."
  value       = module.cluster.nodes
}

output "instance_ids" {
  description = "EC2 instance id of each node, in rank order."
  value       = module.cluster.instance_ids
}

output "security_group_id" {
  description = "The run's security group."
  value       = module.cluster.security_group_id
}

output "cluster" {
  description = "What was asked for, as applied."
  value = {
    job_name       = var.job_name
    nodes          = var.nodes
    slots_per_node = var.slots_per_node
    gpus_per_node  = var.gpus_per_node
    region         = var.region
    zone           = var.zone
    instance_type  = var.instance_type
    ami_id         = var.ami_id
    market         = var.market
    placement      = var.placement
    efa            = var.efa
  }
}
