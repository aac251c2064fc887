output "nodes" {
  description = "Node inventory in rank order: name, address, SSH port, pinned host public key, work directory and slots."
  value = [
    for i, n in local.nodes : {
      rank        = n.rank
      name        = n.name
      address     = n.address
      port        = var.port
      host_key    = var.host_keys[i]
      work_dir    = "${n.node_dir}/work"
      slots       = var.slots_per_node
      resource_id = terraform_data.node[i].id
    }
  ]
}
