// Package configdrive gives a tenant's bare-metal server what nova gives a virtual
// one: the key pair, the user data, the admin password, the hostname and the network
// configuration, in OpenStack's config drive layout, exactly as nova 26 writes it
// (api/metadata/base.py, virt/configdrive.py, virt/netutils.py), so that cloud-init's
// ConfigDrive datasource, or anything else that reads a config drive, reads it.
//
// # Building
//
// FromInstance takes the Instance of a build_and_run_instance (or rebuild) cast and
// its admin password; NetworkFromVIFs takes nova's network_info (the instance's
// info_cache, or VIFs made from a Neutron port with VIFFromPort); Build lays out the
// tree: the drive (Layout) and an authorized_keys file for images without
// cloud-init. The user data and the admin password are secrets: they are in the
// tree's files (user_data, meta_data.json's admin_pass) and nowhere else; the
// Instance's String, Format and JSON forms, and File's, never show them. Build the
// tree when the cast is read, write it at once (Store.Write), and keep only its
// Location: the secrets never reach the database. The network files hold no
// secret: NetworkFiles rebuilds them from an Instance without its secrets (kept as
// messages.WithoutInstanceSecrets gives it) once the address is known, and
// Store.Update puts them in place.
//
// # Delivery to one node only
//
// The worker runs on the xCAT management node. Of the ways to get the tree onto the
// deployed node and nowhere else:
//
//   - Data in the postscript's arguments: xCAT keeps postscript arguments in its
//     postscripts table and in every copy of the node's mypostscript, on the node
//     for good; user data (up to 64 KiB) and the admin password would be stored in
//     xCAT's database and left on the node.
//   - Pushing files over ssh (xdcp, updatenode -F) once the node is up: needs the
//     node booted and reachable as root over ssh, so the files arrive after
//     cloud-init has looked for its datasource on the first boot, and it adds an
//     ssh round per node to every deployment.
//   - A config-2 partition on the node's disk: what cloud-init finds on every boot,
//     but it has to be made by the installer (per distribution: kickstart, autoyast,
//     preseed), the data still has to reach the installer somehow, and it stays on
//     the disk.
//   - A per-deployment tree in the install tree, under an unguessable name (chosen
//     here): the worker writes it where xCAT's web server serves the install
//     directory, under <installdir>/xcatbm/<token>, the token being 128 random bits.
//     No directory of the store can be listed except by root (0711, or 0710 with
//     the web server's group), so the web server serves a file only to whoever asks
//     for its exact path, and the path holds the token. The token reaches the node
//     as an argument of its own config_ops_bmnode postscript entry (xCAT hands a
//     node only its own postscript list, through xcatd's getpostscript, which
//     identifies the node by its address); the postscript fetches the tree over
//     HTTP from the management node and installs it. The worker removes the tree
//     when the node reports booted (the postscript has run by then), and on
//     destroy, rebuild and failure; Store.Stale finds trees a crash left behind.
//
// What the choice relies on: site.precreatemypostscripts must stay 0 (xCAT's
// default), because precreated mypostscript files are served from the tftp
// directory by name, to anyone; and the install network is trusted as it is for
// xCAT itself (the tree travels in clear HTTP, like the OS image and the
// postscripts).
//
// # Layout in the store
//
// <installdir>/xcatbm/<token>/ holds manifest (every other file of the tree, one
// path a line), authorized_keys (when the instance has an SSH key) and config-drive/
// (the drive: openstack/<version>/..., ec2/<version>/...). Location.Path is the argument of
// config_ops_bmnode's --config-drive.
package configdrive
