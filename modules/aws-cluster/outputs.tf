output "nodes" {
  description = "Node inventory in rank order: name, rank, address (public IP when the subnet gives one, else private), peer_address (private IP), port, user, pinned host public key, work directory, slots, instance id."
  value = [
    for rank, node in aws_instance.node : {
      rank         = rank
      name         = "node-${rank}"
      address      = coalesce(node.public_ip, node.private_ip)
      peer_address = node.private_ip
      port         = 22
      user         = var.login_user
      host_key     = nonsensitive(var.host_keys[rank].public)
      work_dir     = local.work_dir
      slots        = var.slots_per_node
      resource_id  = node.id
    }
  ]
}

output "instance_ids" {
  description = "EC2 instance id of each node, in rank order."
  value       = aws_instance.node[*].id
}

output "security_group_id" {
  description = "The run's security group."
  value       = aws_security_group.nodes.id
}
