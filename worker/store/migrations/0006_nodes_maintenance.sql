-- A node in maintenance is held out of nova's scheduling (its placement inventory
-- reserved) though it runs no instance: 'cleaning' while its disks are erased
-- between tenants, or why it is held ('cleaning failed: ...'), until an admin
-- retries or clears it. '' is available.
ALTER TABLE nodes ADD COLUMN maintenance text NOT NULL DEFAULT '';
