"""Reads a config drive with cloud-init's own ConfigDrive datasource.

Usage: python3 read_config_drive.py <seed dir> <known macs JSON>

<seed dir> holds the drive (openstack/..., ec2/...); it is read as cloud-init reads
/var/lib/cloud/seed/config_drive, from a cloud directory of its own beside it, so
nothing of this machine's cloud-init state is read or written. <known macs JSON>
maps MAC addresses to interface names for convert_net_json. Prints one JSON object
with what the datasource found.
"""

import base64
import json
import os
import sys
import tempfile

from cloudinit import distros, helpers
from cloudinit.sources import DataSourceConfigDrive
from cloudinit.sources.helpers import openstack


def main():
    seed, known_macs = sys.argv[1], json.loads(sys.argv[2])
    with tempfile.TemporaryDirectory() as tmp:
        cloud_dir = os.path.join(tmp, "cloud")
        os.makedirs(os.path.join(cloud_dir, "seed"))
        os.symlink(os.path.abspath(seed), os.path.join(cloud_dir, "seed", "config_drive"))
        paths = helpers.Paths({"cloud_dir": cloud_dir, "run_dir": os.path.join(tmp, "run")})
        distro = distros.fetch("debian")("debian", {}, paths)
        ds = DataSourceConfigDrive.DataSourceConfigDrive({"datasource_list": ["ConfigDrive"]}, distro, paths)
        if not ds.get_data():
            print(json.dumps({"found": False}))
            return
        userdata = ds.get_userdata_raw()
        out = {
            "found": True,
            "source": ds.source == os.path.join(cloud_dir, "seed", "config_drive"),
            "version": ds.version,
            "instance_id": ds.get_instance_id(),
            "local_hostname": ds.get_hostname().hostname,
            "fqdn": ds.get_hostname(fqdn=True).hostname,
            "public_keys": ds.get_public_ssh_keys(),
            "availability_zone": ds.availability_zone,
            "admin_pass": ds.metadata.get("admin_pass"),
            "meta": ds.metadata.get("meta"),
            "userdata_b64": None if userdata is None else base64.b64encode(
                userdata if isinstance(userdata, bytes) else userdata.encode()).decode(),
            "ec2_public_keys": (ds.ec2_metadata or {}).get("public-keys"),
            "ec2_local_ipv4": (ds.ec2_metadata or {}).get("local-ipv4"),
            "network_config": None,
        }
        if ds.network_json:
            out["network_config"] = openstack.convert_net_json(ds.network_json, known_macs=known_macs)
        print(json.dumps(out, sort_keys=True))


main()
