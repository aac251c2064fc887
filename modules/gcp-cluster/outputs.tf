output "nodes" {
  description = "Node inventory in rank order: name, rank, address (the external NAT IP), peer_address (the internal IP), port, user, pinned host public key, work directory, slots, instance id."
  value = [
    for rank, node in google_compute_instance.node : {
      rank         = rank
      name         = "node-${rank}"
      address      = node.network_interface[0].access_config[0].nat_ip
      peer_address = node.network_interface[0].network_ip
      port         = 22
      user         = var.ssh_user
      host_key     = nonsensitive(var.host_keys[rank].public)
      work_dir     = local.work_dir
      slots        = var.slots_per_node
      resource_id  = node.instance_id
    }
  ]
}

output "instance_names" {
  description = "Compute Engine instance name of each node, in rank order."
  value       = google_compute_instance.node[*].name
}

output "firewall_rules" {
  description = "The run's firewall rules (SSH from ssh_cidrs per address family, all traffic between its nodes)."
  value       = concat([for rule in google_compute_firewall.ssh : rule.name], [google_compute_firewall.internal.name])
}

output "placement_policy" {
  description = "The run's compact placement policy (self link), or null without one."
  value       = one(google_compute_resource_policy.placement[*].self_link)
}
