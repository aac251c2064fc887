# Rendered by composer for job "gcp-g2-spot-2"; edit job.toml, not this file.

output "nodes" {
  description = "Node inventory in rank order; composer reads it after apply."
  value       = module.cluster.nodes
}

output "instance_names" {
  description = "Compute Engine instance name of each node, in rank order."
  value       = module.cluster.instance_names
}

output "firewall_rules" {
  description = "The run's firewall rules."
  value       = module.cluster.firewall_rules
}

output "placement_policy" {
  description = "The run's compact placement policy (self link), or null without one."
  value       = module.cluster.placement_policy
}

output "cluster" {
  description = "What was asked for, as applied."
  value = {
    job_name        = var.job_name
    nodes           = var.nodes
    slots_per_node  = var.slots_per_node
    gpus_per_node   = var.gpus_per_node
    project         = var.project
    region          = var.region
    zone            = var.zone
    machine_type    = var.machine_type
    image           = var.image_self_link
    accelerator     = var.accelerator
    provisioning    = var.provisioning
    placement       = var.placement
    max_run_seconds = var.max_run_seconds
  }
}
