"""The Resource Manager operations (RBAC authorization actions) the adapters need, and nothing more.

`infra/main.bicep` grants exactly these through two custom roles: `RESOURCE_GROUP_OPERATIONS` at
each resource group the service manages, `SUBSCRIPTION_OPERATIONS` at the subscription (requests
whose URL names the subscription itself). `tests/infra` checks both against the Bicep and against
every request the local emulator serves during a create, attach, verify, detach and delete.

Standard library only: the infra tests import it without the Azure SDKs."""

from __future__ import annotations

RESOURCE_GROUP_OPERATIONS: tuple[str, ...] = (
    # ArmStorageCloud.group_region: GET the resource group (its region)
    "Microsoft.Resources/subscriptions/resourceGroups/read",
    # ArmStorageCloud.get_account / list_accounts(group) / create_account / delete_account
    "Microsoft.Storage/storageAccounts/read",
    "Microsoft.Storage/storageAccounts/write",
    "Microsoft.Storage/storageAccounts/delete",
    # create_account polls .../Microsoft.Storage/locations/{region}/asyncoperations/{id}; the storage
    # provider publishes this action for it ("Poll Asynchronous Operation")
    "Microsoft.Storage/operations/read",
    # account_locked / lock_account / unlock_account: the account's CanNotDelete lock
    "Microsoft.Authorization/locks/read",
    "Microsoft.Authorization/locks/write",
    "Microsoft.Authorization/locks/delete",
    # ArmStorageCloud.get_share (also with $expand=stats) / put_share
    "Microsoft.Storage/storageAccounts/fileServices/shares/read",
    "Microsoft.Storage/storageAccounts/fileServices/shares/write",
    # ArmStorageCloud.delete_snapshot: DELETE the share with x-ms-snapshot (its own expired ones)
    "Microsoft.Storage/storageAccounts/fileServices/shares/delete",
    # ArmStorageCloud.protect_shares: GET and PUT fileServices/default (share soft delete)
    "Microsoft.Storage/storageAccounts/fileServices/read",
    "Microsoft.Storage/storageAccounts/fileServices/write",
    # create_endpoint, linked check on the account: without it the endpoint's connection waits
    # for a manual approval instead of being approved at once
    "Microsoft.Storage/storageAccounts/privateEndpointConnectionsApproval/action",
    # get_network / create_network (the VNet, or one more subnet) / delete_network_if_unused
    "Microsoft.Network/virtualNetworks/read",
    "Microsoft.Network/virtualNetworks/write",
    "Microsoft.Network/virtualNetworks/delete",
    "Microsoft.Network/virtualNetworks/subnets/read",
    "Microsoft.Network/virtualNetworks/subnets/write",
    # create_endpoint, linked check on the subnet the endpoint's NIC joins
    "Microsoft.Network/virtualNetworks/subnets/join/action",
    # create_zone_link, linked check on the VNet the zone is linked to
    "Microsoft.Network/virtualNetworks/join/action",
    # ArmVmCloud.vnets_connected: list the peerings of both VNets
    "Microsoft.Network/virtualNetworks/virtualNetworkPeerings/read",
    # get_endpoint / endpoint_vnet / create_endpoint / delete_endpoint
    "Microsoft.Network/privateEndpoints/read",
    "Microsoft.Network/privateEndpoints/write",
    "Microsoft.Network/privateEndpoints/delete",
    # has_zone_group / create_zone_group (the endpoint's A record in the zone)
    "Microsoft.Network/privateEndpoints/privateDnsZoneGroups/read",
    "Microsoft.Network/privateEndpoints/privateDnsZoneGroups/write",
    # create_zone_group, linked check on the zone the group writes its records into
    "Microsoft.Network/privateDnsZones/join/action",
    # network long-running operations: Azure-AsyncOperation and Location monitors
    # (.../Microsoft.Network/locations/{region}/operations|operationResults/{id})
    "Microsoft.Network/locations/operations/read",
    "Microsoft.Network/locations/operationResults/read",
    # endpoint_place / guard_subnet / security_rules / put_security_rule / delete_security_rule:
    # the group on the endpoints' subnet with each storage's allow rule (network_rules.py);
    # delete_network_if_unused deletes the group with the service's VNet
    "Microsoft.Network/networkSecurityGroups/read",
    "Microsoft.Network/networkSecurityGroups/write",
    "Microsoft.Network/networkSecurityGroups/delete",
    "Microsoft.Network/networkSecurityGroups/securityRules/read",  # the rule's PUT is polled by GET
    "Microsoft.Network/networkSecurityGroups/securityRules/write",
    "Microsoft.Network/networkSecurityGroups/securityRules/delete",
    # guard_subnet, linked check on the group a subnet is given
    "Microsoft.Network/networkSecurityGroups/join/action",
    # ArmVmCloud.get_vm: the VM's primary NIC, for its subnet and VNet
    "Microsoft.Network/networkInterfaces/read",
    # file_zones / create_zone / delete_zone (the service's own zone, in a group it manages)
    "Microsoft.Network/privateDnsZones/read",
    "Microsoft.Network/privateDnsZones/write",
    "Microsoft.Network/privateDnsZones/delete",
    # zone_records / put_record / delete_record: a storage's A record in the zone that answers
    # for a VM's VNet when that is not the endpoint's zone (GET .../privateDnsZones/{zone}/A)
    "Microsoft.Network/privateDnsZones/A/read",
    "Microsoft.Network/privateDnsZones/A/write",
    "Microsoft.Network/privateDnsZones/A/delete",
    # file_zones / link_zone / unlink_zone
    "Microsoft.Network/privateDnsZones/virtualNetworkLinks/read",
    "Microsoft.Network/privateDnsZones/virtualNetworkLinks/write",
    "Microsoft.Network/privateDnsZones/virtualNetworkLinks/delete",
    # missing_zone_actions: the service's own permissions on a zone it did not create
    "Microsoft.Authorization/permissions/read",
    # private DNS long-running operations: resource-group scoped monitors
    "Microsoft.Network/privateDnsOperationStatuses/read",
    "Microsoft.Network/privateDnsOperationResults/read",
    # ArmVmCloud.get_vm ($expand=instanceView is part of the VM read)
    "Microsoft.Compute/virtualMachines/read",
    # ArmVmCloud.run_script / _read / delete_run: managed Run Commands
    "Microsoft.Compute/virtualMachines/runCommands/read",
    "Microsoft.Compute/virtualMachines/runCommands/write",
    "Microsoft.Compute/virtualMachines/runCommands/delete",
    # compute long-running operations (.../Microsoft.Compute/locations/{region}/operations/{id})
    "Microsoft.Compute/locations/operations/read",
)

SUBSCRIPTION_OPERATIONS: tuple[str, ...] = (
    # ArmStorageCloud.name_available: POST /subscriptions/{id}/providers/Microsoft.Storage/
    # checkNameAvailability, which the storage provider authorizes as a read
    "Microsoft.Storage/checkNameAvailability/read",
    # ArmStorageCloud.list_accounts(None): GET /subscriptions/{id}/providers/Microsoft.Storage/
    # storageAccounts, when a listing names no resource group and no default is set
    "Microsoft.Storage/storageAccounts/read",
    # ArmStorageCloud.file_zones: GET /subscriptions/{id}/providers/Microsoft.Network/
    # privateDnsZones, and the links of each privatelink.file zone: the zone already linked to a
    # VNet may live in any group (a hub's central zone)
    "Microsoft.Network/privateDnsZones/read",
    "Microsoft.Network/privateDnsZones/virtualNetworkLinks/read",
    # ArmStorageCloud.vnet_dns: a VM's VNet, wherever it is (its DNS servers)
    "Microsoft.Network/virtualNetworks/read",
    # ArmVmCloud.list_vms: GET /subscriptions/{id}/providers/Microsoft.Compute/virtualMachines
    # (costs and reconciliation see every VM of the subscription)
    "Microsoft.Compute/virtualMachines/read",
    # ArmAccessReader: what a caller may do at a scope anywhere in the subscription. A service
    # principal's role assignments there (atScope() and assignedTo(...)), the roles they name,
    # and everyone's deny assignments there (the permissions API asked for a user reflects none)
    "Microsoft.Authorization/roleAssignments/read",
    "Microsoft.Authorization/roleDefinitions/read",
    "Microsoft.Authorization/denyAssignments/read",
)

# Checked by Resource Manager on another resource a request names (a subnet, a VNet, a zone, the
# account behind a private endpoint); never a request of their own, so no request log shows them.
LINKED_OPERATIONS: frozenset[str] = frozenset(
    {
        "Microsoft.Storage/storageAccounts/privateEndpointConnectionsApproval/action",
        "Microsoft.Network/virtualNetworks/subnets/join/action",
        "Microsoft.Network/virtualNetworks/join/action",
        "Microsoft.Network/networkSecurityGroups/join/action",
        "Microsoft.Network/privateDnsZones/join/action",
    }
)

# Requested only where a zone the service did not create answers for a VNet (a hub's central zone
# or another group's): its permissions there, and the storage's record written into it.
# tests/functions/test_private_dns.py sees each requested.
FOREIGN_ZONE_OPERATIONS: frozenset[str] = frozenset(
    {
        "Microsoft.Authorization/permissions/read",
        "Microsoft.Network/privateDnsZones/A/write",
        "Microsoft.Network/privateDnsZones/A/delete",
    }
)

# The single list: every Resource Manager operation the adapters call.
ARM_OPERATIONS: frozenset[str] = frozenset(RESOURCE_GROUP_OPERATIONS + SUBSCRIPTION_OPERATIONS)
