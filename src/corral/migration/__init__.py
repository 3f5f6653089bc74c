"""Live and cold migration of a VM between hosts.

The source host's agent runs `vm.migrate` and drives the migration; it queues a `vm.receive`
child task for the target host's agent, which prepares an incoming QEMU (and NBD exports for
local disks). The two meet through one record in etcd, /corral/vms/<vmid>/migration
(`record.MigrationRecord`): the source creates it (preparing), the target publishes where to
send (ready), the source moves RAM and disks (transferring), flips the VM's placement and says
so (completed), and only then does the target run the guest. Either side may abort.
"""
