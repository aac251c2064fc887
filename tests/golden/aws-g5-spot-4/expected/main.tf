# Rendered by composer for job "aws-g5-spot-4"; edit job.toml, not this file.

# Every resource carries the run's tags, so `composer gc` finds what a dead run left.
provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, {
      "composer:run-id"     = var.run_id
      "composer:job"        = var.job_name
      "composer:expires-at" = var.expires_at
    })
  }
}

module "cluster" {
  source = "./modules/aws-cluster"

  job_name         = var.job_name
  run_id           = var.run_id
  node_count       = var.nodes
  slots_per_node   = var.slots_per_node
  ami_id           = var.ami_id
  instance_type    = var.instance_type
  subnet_id        = var.subnet
  market           = var.market
  max_spot_price   = var.max_spot_price
  placement        = var.placement
  efa              = var.efa
  root_volume_gb   = var.root_volume_gb
  ssh_cidrs        = var.ssh_cidrs
  login_user       = var.login_user
  authorized_key   = var.authorized_key
  host_keys        = var.host_keys
  expires_at_epoch = var.expires_at_epoch
  packages         = var.packages
  pip_packages     = var.pip_packages
}
