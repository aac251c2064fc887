# Rendered by composer for job "gcp-a3-compact-8"; edit job.toml, not this file.

# Credentials: Application Default Credentials. The module labels every resource that
# takes labels with the run (composer-run-id, composer-job, composer-expires-at) and
# writes the same into the description of those that take none, so `composer gc` finds
# what a dead run left.
provider "google" {
  project = var.project
  region  = var.region
}

module "cluster" {
  source = "./modules/gcp-cluster"

  job_name        = var.job_name
  run_id          = var.run_id
  node_count      = var.nodes
  slots_per_node  = var.slots_per_node
  gpus_per_node   = var.gpus_per_node
  region          = var.region
  zone            = var.zone
  machine_type    = var.machine_type
  image           = var.image_self_link
  accelerator     = var.accelerator
  provisioning    = var.provisioning
  placement       = var.placement
  boot_disk_gb    = var.boot_disk_gb
  network         = var.network_self_link
  subnetwork      = var.subnetwork_self_link
  ssh_cidrs       = var.ssh_cidrs
  ssh_user        = var.ssh_user
  authorized_key  = var.authorized_key
  host_keys       = var.host_keys
  labels          = var.labels
  expires_at      = var.expires_at
  max_run_seconds = var.max_run_seconds
  packages        = var.packages
  pip_packages    = var.pip_packages
}
