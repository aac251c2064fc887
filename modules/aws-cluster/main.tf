locals {
  name     = "composer-${var.job_name}-${var.run_id}"
  work_dir = "/opt/composer/${var.run_id}"
  spot     = contains(["spot"], var.market)
  cluster  = contains(["cluster"], var.placement)
  # A security group rule takes an IPv4 or an IPv6 block, each in its own argument.
  ssh_cidrs_ipv4 = toset([for cidr in var.ssh_cidrs : cidr if can(cidrnetmask(cidr))])
  ssh_cidrs_ipv6 = toset([for cidr in var.ssh_cidrs : cidr if strcontains(cidr, ":")])
}

data "aws_subnet" "chosen" {
  id = var.subnet_id
}

# Port 22 from ssh_cidrs only; every protocol between the run's own nodes (MPI, and
# EFA, which needs the group to allow all traffic to and from itself); egress open.
resource "aws_security_group" "nodes" {
  name        = local.name
  description = "composer run ${var.run_id}: SSH from ssh_cidrs, all traffic between its nodes"
  vpc_id      = data.aws_subnet.chosen.vpc_id
  tags = {
    Name = local.name
  }
}

resource "aws_vpc_security_group_ingress_rule" "ssh_ipv4" {
  for_each = local.ssh_cidrs_ipv4

  security_group_id = aws_security_group.nodes.id
  description       = "SSH from ${each.value}"
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "ssh_ipv6" {
  for_each = local.ssh_cidrs_ipv6

  security_group_id = aws_security_group.nodes.id
  description       = "SSH from ${each.value}"
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
  cidr_ipv6         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "members" {
  security_group_id            = aws_security_group.nodes.id
  description                  = "All traffic from the run's nodes"
  ip_protocol                  = "-1"
  referenced_security_group_id = aws_security_group.nodes.id
}

resource "aws_vpc_security_group_egress_rule" "members" {
  security_group_id            = aws_security_group.nodes.id
  description                  = "All traffic to the run's nodes"
  ip_protocol                  = "-1"
  referenced_security_group_id = aws_security_group.nodes.id
}

resource "aws_vpc_security_group_egress_rule" "all_ipv4" {
  security_group_id = aws_security_group.nodes.id
  description       = "All outbound IPv4 traffic"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "all_ipv6" {
  security_group_id = aws_security_group.nodes.id
  description       = "All outbound IPv6 traffic"
  ip_protocol       = "-1"
  cidr_ipv6         = "::/0"
}

resource "aws_placement_group" "nodes" {
  count = local.cluster ? 1 : 0

  name     = local.name
  strategy = "cluster"
}

# aws_instance's own network_interface blocks only attach existing interfaces, and an
# interface made beforehand gets no public IPv4 at launch. A launch template's interface
# is created with the instance: interface_type "efa" on network card 0, in the chosen
# subnet, whose own setting decides the public address (associate_public_ip_address
# left unset). Types with more network cards (p4d, p5) use one EFA here.
resource "aws_launch_template" "efa" {
  count = var.efa ? 1 : 0

  name        = local.name
  description = "EFA primary interface for composer run ${var.run_id}"

  network_interfaces {
    device_index          = 0
    network_card_index    = 0
    interface_type        = "efa"
    subnet_id             = var.subnet_id
    security_groups       = [aws_security_group.nodes.id]
    delete_on_termination = "true"
  }
}

resource "aws_instance" "node" {
  count = var.node_count

  ami           = var.ami_id
  instance_type = var.instance_type
  # With EFA the launch template's interface holds the subnet and security group.
  subnet_id              = var.efa ? null : var.subnet_id
  vpc_security_group_ids = var.efa ? null : [aws_security_group.nodes.id]
  placement_group        = one(aws_placement_group.nodes[*].name)

  # The boot step schedules a power-off at expires_at_epoch + grace_minutes; this turns
  # it into termination, so a node whose composer died still goes away.
  instance_initiated_shutdown_behavior = "terminate"

  user_data = templatefile("${path.module}/cloud-init.yaml.tftpl", {
    host_key_private = var.host_keys[count.index].private
    host_key_public  = var.host_keys[count.index].public
    authorized_key   = var.authorized_key
    ssh_user         = var.login_user
    run_id           = var.run_id
    work_dir         = local.work_dir
    expires_at_epoch = var.expires_at_epoch
    grace_minutes    = var.grace_minutes
    packages         = var.packages
    pip_packages     = var.pip_packages
    boot_script      = file("${path.module}/scripts/boot.sh")
  })
  user_data_replace_on_change = true

  dynamic "launch_template" {
    for_each = aws_launch_template.efa
    content {
      id      = launch_template.value.id
      version = tostring(launch_template.value.latest_version)
    }
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.root_volume_gb
    encrypted             = true
    delete_on_termination = true
  }

  # IMDSv2 only, one hop: a container on the node cannot reach instance metadata
  # (nor the user-data that carries the node's host key).
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  dynamic "instance_market_options" {
    for_each = local.spot ? ["spot"] : []
    content {
      market_type = "spot"
      spot_options {
        max_price                      = var.max_spot_price
        spot_instance_type             = "one-time"
        instance_interruption_behavior = "terminate"
      }
    }
  }

  tags = {
    Name            = "${local.name}-node-${count.index}"
    "composer:node" = "node-${count.index}"
  }

  lifecycle {
    precondition {
      condition     = contains([var.node_count], length(var.host_keys))
      error_message = "host_keys must hold one key pair per node."
    }
  }
}
