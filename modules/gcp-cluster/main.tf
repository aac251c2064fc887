locals {
  prefix   = "composer-${var.run_id}"
  tag      = "composer-${var.run_id}"
  work_dir = "/opt/composer/${var.run_id}"
  series   = split("-", var.machine_type)[0]
  spot     = contains(["spot"], var.provisioning)
  standard = contains(["standard"], var.provisioning)
  # A compact policy holds exactly vm_count nodes; one node has nothing to be near.
  compact = alltrue([contains(["compact"], var.placement),
  can(regex("^([2-9]|[1-9][0-9]+)$", tostring(var.node_count)))])

  # Every labelled resource carries the run; firewall rules and resource policies take
  # no labels, so their description says the same.
  labels = merge(var.labels, {
    "composer-run-id"     = var.run_id
    "composer-job"        = var.job_name
    "composer-expires-at" = var.expires_at
  })
  facts = "composer-run-id=${var.run_id} composer-job=${var.job_name} composer-expires-at=${var.expires_at}"

  # Series whose GPUs come with the machine type (composer/targets/gcp/config.py).
  gpu_series   = ["a2", "a3", "a4", "a4x", "g2", "g4"]
  accelerators = var.accelerator[*]
  # GPUs cannot live-migrate and Spot VMs are never migrated: host maintenance stops them.
  terminate_on_maintenance = anytrue([
    local.spot,
    can(local.accelerators[0]),
    contains(local.gpu_series, local.series),
    can(regex("^[1-9]", tostring(var.gpus_per_node))),
  ])
  # max_run_duration: Compute Engine deletes the node when its time is up, composer or
  # not; a Spot VM is deleted, not stopped, when preempted.
  max_run_seconds = contains([0], var.max_run_seconds) ? [] : [var.max_run_seconds]
  delete_at_end   = anytrue([local.spot, can(local.max_run_seconds[0])])

  # Series that take only the gVNIC driver (virtio-net is not offered).
  gvnic_series = ["a3", "a4", "a4x", "c3", "c3d", "c4", "c4a", "c4d", "g4", "h3", "h4d",
  "m4", "n4", "n4a", "n4d", "t2a", "x4", "z3"]
  # Series (and A3 Ultra) whose boot disk can only be Hyperdisk; the others take
  # pd-balanced (N1, E2, N2, N2D, C2, C2D, C3, C3D, A2, A3 High/Mega/Edge, G2, ...).
  hyperdisk_series = ["a4", "a4x", "c4", "c4a", "c4d", "g4", "h4d", "m4", "n4", "n4a", "n4d",
  "x4"]
  hyperdisk = anytrue([contains(local.hyperdisk_series, local.series),
  startswith(var.machine_type, "a3-ultragpu-")])

  # A firewall rule takes IPv4 or IPv6 source ranges, not both: one rule per family
  # that has any.
  ssh_ranges = {
    "ssh"      = [for cidr in var.ssh_cidrs : cidr if can(cidrnetmask(cidr))]
    "ssh-ipv6" = [for cidr in var.ssh_cidrs : cidr if strcontains(cidr, ":")]
  }
}

# Port 22 from ssh_cidrs, to the run's nodes only (its network tag).
resource "google_compute_firewall" "ssh" {
  for_each = { for suffix, ranges in local.ssh_ranges : suffix => ranges if can(ranges[0]) }

  name          = "${local.prefix}-${each.key}"
  description   = local.facts
  network       = var.network
  direction     = "INGRESS"
  source_ranges = each.value
  target_tags   = [local.tag]

  allow {
    protocol = "tcp"
    ports    = ["22"]
  }
}

# Every protocol between the run's own nodes (MPI, NCCL).
resource "google_compute_firewall" "internal" {
  name        = "${local.prefix}-internal"
  description = local.facts
  network     = var.network
  direction   = "INGRESS"
  source_tags = [local.tag]
  target_tags = [local.tag]

  allow {
    protocol = "all"
  }
}

resource "google_compute_resource_policy" "placement" {
  count = local.compact ? 1 : 0

  name        = "${local.prefix}-placement"
  description = local.facts
  region      = var.region

  # COLLOCATED needs vm_count: exactly that many nodes are created with the policy.
  group_placement_policy {
    collocation = "COLLOCATED"
    vm_count    = var.node_count
  }
}

resource "google_compute_instance" "node" {
  count = var.node_count

  name              = "${local.prefix}-node-${count.index}"
  description       = "composer run ${var.run_id}, node ${count.index}"
  zone              = var.zone
  machine_type      = var.machine_type
  tags              = [local.tag]
  labels            = local.labels
  resource_policies = google_compute_resource_policy.placement[*].self_link

  boot_disk {
    auto_delete = true
    initialize_params {
      image  = var.image
      size   = var.boot_disk_gb
      type   = local.hyperdisk ? "hyperdisk-balanced" : "pd-balanced"
      labels = local.labels
    }
  }

  network_interface {
    network    = var.network
    subnetwork = var.subnetwork
    nic_type   = contains(local.gvnic_series, local.series) ? "GVNIC" : null

    # An external address: composer reaches port 22 from outside the network.
    access_config {}
  }

  dynamic "guest_accelerator" {
    for_each = local.accelerators
    content {
      type  = guest_accelerator.value.type
      count = guest_accelerator.value.count
    }
  }

  scheduling {
    provisioning_model          = local.spot ? "SPOT" : "STANDARD"
    preemptible                 = local.spot
    automatic_restart           = local.standard
    on_host_maintenance         = local.terminate_on_maintenance ? "TERMINATE" : "MIGRATE"
    instance_termination_action = local.delete_at_end ? "DELETE" : null

    dynamic "max_run_duration" {
      for_each = local.max_run_seconds
      content {
        seconds = max_run_duration.value
      }
    }
  }

  # The run's client key is the login user's only key: project-wide keys are blocked
  # and OS Login (which would ignore ssh-keys) is off. The startup script runs as root
  # on every boot (modules/gcp-cluster/BOOT.md).
  metadata = {
    "ssh-keys"               = "${var.ssh_user}:${var.authorized_key}"
    "block-project-ssh-keys" = "true"
    "enable-oslogin"         = "FALSE"
    "startup-script" = templatefile("${path.module}/startup.sh.tftpl", {
      host_key_private = var.host_keys[count.index].private
      host_key_public  = var.host_keys[count.index].public
      authorized_key   = var.authorized_key
      ssh_user         = var.ssh_user
      run_id           = var.run_id
      work_dir         = local.work_dir
      packages         = var.packages
      pip_packages     = var.pip_packages
      boot_script      = file("${path.module}/scripts/boot.sh")
    })
  }

  lifecycle {
    precondition {
      condition     = contains([var.node_count], length(var.host_keys))
      error_message = "host_keys must hold one key pair per node."
    }
  }
}
