// azlin storage service: the Function App, its storage, monitoring, identity, Event Grid system
// topic and least-privilege roles. Subscription scope, because the custom roles, their
// subscription-level assignment and the resource group itself live there.
// The Event Grid subscription to the function is events.bicep, deployed after the code
// (infra/hooks/postdeploy.sh): Event Grid refuses a destination function that does not exist yet.
targetScope = 'subscription'

@minLength(1)
@maxLength(40)
@description('azd environment name; names the resource group and, hashed, every resource.')
param environmentName string

@minLength(1)
@description('Region of the app and its resources.')
param location string

@description('Resource group of the app; empty: rg-<environmentName>.')
param resourceGroupName string = ''

@minLength(1)
@maxLength(20)
@description('Existing resource groups the service manages: its NFS storage, the VMs it attaches and their VNets. Each gets the custom role; Event Grid delivers only VM writes in these groups.')
param managedResourceGroups array

@description('DEFAULT_RESOURCE_GROUP, used when a request names none; empty: the first managed group.')
param defaultResourceGroup string = ''

@description('DEFAULT_REGION, used when a request names none; empty: the region of the resource group.')
param defaultRegion string = ''

@description('DEFAULT_VNET and DEFAULT_SUBNET for private endpoints; empty: the service creates azlin-vnet.')
param defaultVnet string = ''
param defaultSubnet string = ''

@description('PRIVATE_DNS_ZONE_ID: the central privatelink.file.core.windows.net zone of a hub-and-spoke network (grant the identity Private DNS Zone Contributor on it); empty: the zone linked to each VNet, else the service\'s own.')
param privateDnsZoneId string = ''

@description('AUTO_ATTACH_TAG: the VM tag naming the storage to attach at creation.')
param autoAttachTag string = 'azlin-storage'

@minLength(36)
@maxLength(36)
@description('Client id of the API\'s app registration, made by hand (docs/deploy.md): the audience of callers\' tokens. Its federated credential trusts the identity this template makes (output IDENTITY_PRINCIPAL_ID).')
param apiClientId string

@description('Key Vault secret URI holding COST_DIGEST_WEBHOOK_URL (such URLs carry a token); empty: no digests. The app identity needs Key Vault Secrets User on that vault.')
param costDigestWebhookSecretUri string = ''

@description('CORS_ALLOWED_ORIGINS: comma-separated origins of portals whose browser pages call the API (e.g. https://portal.example.com), * for any; empty: no cross-origin calls. Set on the Function App\'s CORS (siteConfig.cors), answered by the platform.')
param corsAllowedOrigins string = ''

@allowed([
  512
  2048
  4096
])
@description('Flex Consumption instance memory (MB).')
param instanceMemoryMB int = 2048

@minValue(1)
@maxValue(1000)
@description('Flex Consumption maximum instance count.')
param maximumInstanceCount int = 40

var tags = {
  'azd-env-name': environmentName
  'managed-by': 'azlin'
}
var token = toLower(uniqueString(subscription().id, environmentName, location))
var groupName = empty(resourceGroupName) ? 'rg-${environmentName}' : resourceGroupName

resource group 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: groupName
  location: location
  tags: tags
}

// What the adapters do in a managed resource group: exactly RESOURCE_GROUP_OPERATIONS of
// shared/adapters/arm_operations.py (tests/infra checks it). No wildcard, no */read.
resource groupRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, 'azlin-storage-service-groups')
  properties: {
    roleName: 'azlin storage service ${environmentName}-${token} (resource groups)'
    description: 'Create, resize and delete NFS storage (account, share, private endpoint, private DNS) and attach VMs through managed Run Command.'
    type: 'CustomRole'
    assignableScopes: [for name in managedResourceGroups: '${subscription().id}/resourceGroups/${name}']
    permissions: [
      {
        actions: [
          'Microsoft.Resources/subscriptions/resourceGroups/read'
          'Microsoft.Storage/storageAccounts/read'
          'Microsoft.Storage/storageAccounts/write'
          'Microsoft.Storage/storageAccounts/delete'
          'Microsoft.Storage/operations/read'
          'Microsoft.Authorization/locks/read'
          'Microsoft.Authorization/locks/write'
          'Microsoft.Authorization/locks/delete'
          'Microsoft.Storage/storageAccounts/fileServices/shares/read'
          'Microsoft.Storage/storageAccounts/fileServices/shares/write'
          'Microsoft.Storage/storageAccounts/fileServices/shares/delete'
          'Microsoft.Storage/storageAccounts/fileServices/read'
          'Microsoft.Storage/storageAccounts/fileServices/write'
          'Microsoft.Storage/storageAccounts/privateEndpointConnectionsApproval/action'
          'Microsoft.Network/virtualNetworks/read'
          'Microsoft.Network/virtualNetworks/write'
          'Microsoft.Network/virtualNetworks/delete'
          'Microsoft.Network/virtualNetworks/subnets/read'
          'Microsoft.Network/virtualNetworks/subnets/write'
          'Microsoft.Network/virtualNetworks/subnets/join/action'
          'Microsoft.Network/virtualNetworks/join/action'
          'Microsoft.Network/virtualNetworks/virtualNetworkPeerings/read'
          'Microsoft.Network/privateEndpoints/read'
          'Microsoft.Network/privateEndpoints/write'
          'Microsoft.Network/privateEndpoints/delete'
          'Microsoft.Network/privateEndpoints/privateDnsZoneGroups/read'
          'Microsoft.Network/privateEndpoints/privateDnsZoneGroups/write'
          'Microsoft.Network/privateDnsZones/join/action'
          'Microsoft.Network/locations/operations/read'
          'Microsoft.Network/locations/operationResults/read'
          'Microsoft.Network/networkSecurityGroups/read'
          'Microsoft.Network/networkSecurityGroups/write'
          'Microsoft.Network/networkSecurityGroups/delete'
          'Microsoft.Network/networkSecurityGroups/securityRules/read'
          'Microsoft.Network/networkSecurityGroups/securityRules/write'
          'Microsoft.Network/networkSecurityGroups/securityRules/delete'
          'Microsoft.Network/networkSecurityGroups/join/action'
          'Microsoft.Network/networkInterfaces/read'
          'Microsoft.Network/privateDnsZones/read'
          'Microsoft.Network/privateDnsZones/write'
          'Microsoft.Network/privateDnsZones/delete'
          'Microsoft.Network/privateDnsZones/A/read'
          'Microsoft.Network/privateDnsZones/A/write'
          'Microsoft.Network/privateDnsZones/A/delete'
          'Microsoft.Network/privateDnsZones/virtualNetworkLinks/read'
          'Microsoft.Network/privateDnsZones/virtualNetworkLinks/write'
          'Microsoft.Network/privateDnsZones/virtualNetworkLinks/delete'
          'Microsoft.Authorization/permissions/read'
          'Microsoft.Network/privateDnsOperationStatuses/read'
          'Microsoft.Network/privateDnsOperationResults/read'
          'Microsoft.Compute/virtualMachines/read'
          'Microsoft.Compute/virtualMachines/runCommands/read'
          'Microsoft.Compute/virtualMachines/runCommands/write'
          'Microsoft.Compute/virtualMachines/runCommands/delete'
          'Microsoft.Compute/locations/operations/read'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
  }
}

// Requests whose URL is the subscription itself, and reads the service makes anywhere in it:
// SUBSCRIPTION_OPERATIONS, reads only (a name check; listings of storage accounts and VMs:
// properties, never keys or data; role, role assignment and deny assignment reads, to answer
// what a caller may do before acting for them).
resource subscriptionRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, 'azlin-storage-service-subscription')
  properties: {
    roleName: 'azlin storage service ${environmentName}-${token} (subscription reads)'
    description: 'Check whether a storage account name is free; list storage accounts and VMs; read role and deny assignments to authorize callers.'
    type: 'CustomRole'
    assignableScopes: [
      subscription().id
    ]
    permissions: [
      {
        actions: [
          'Microsoft.Storage/checkNameAvailability/read'
          'Microsoft.Storage/storageAccounts/read'
          'Microsoft.Network/privateDnsZones/read'
          'Microsoft.Network/privateDnsZones/virtualNetworkLinks/read'
          'Microsoft.Network/virtualNetworks/read'
          'Microsoft.Compute/virtualMachines/read'
          'Microsoft.Authorization/roleAssignments/read'
          'Microsoft.Authorization/roleDefinitions/read'
          'Microsoft.Authorization/denyAssignments/read'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
  }
}

module app 'modules/app.bicep' = {
  name: 'azlin-app'
  scope: group
  params: {
    location: location
    tags: tags
    token: token
    defaultResourceGroup: empty(defaultResourceGroup) ? managedResourceGroups[0] : defaultResourceGroup
    defaultRegion: empty(defaultRegion) ? location : defaultRegion
    defaultVnet: defaultVnet
    defaultSubnet: defaultSubnet
    privateDnsZoneId: privateDnsZoneId
    autoAttachTag: autoAttachTag
    apiClientId: apiClientId
    costDigestWebhookSecretUri: costDigestWebhookSecretUri
    corsAllowedOrigins: corsAllowedOrigins
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
  }
}

module grants 'modules/managed-group.bicep' = [for name in managedResourceGroups: {
  name: 'azlin-grant-${name}'
  scope: resourceGroup(name)
  params: {
    roleDefinitionId: groupRole.id
    principalId: app.outputs.identityPrincipalId
  }
}]

resource subscriptionGrant 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, environmentName, subscriptionRole.id)
  properties: {
    roleDefinitionId: subscriptionRole.id
    principalId: app.outputs.identityPrincipalId
    principalType: 'ServicePrincipal'
    description: 'azlin storage service: storage name checks and listings'
  }
}

// azd stores these in the environment; the postdeploy hook reads them.
output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = group.name
output FUNCTION_APP_NAME string = app.outputs.functionAppName
output FUNCTION_APP_URL string = app.outputs.functionAppUrl
output STORAGE_ACCOUNT_NAME string = app.outputs.storageAccountName
output SYSTEM_TOPIC_NAME string = app.outputs.systemTopicName
output DEAD_LETTER_CONTAINER string = app.outputs.deadLetterContainer
output MANAGED_RESOURCE_GROUPS array = managedResourceGroups
// The app registration's federated credential names these (docs/deploy.md).
output IDENTITY_PRINCIPAL_ID string = app.outputs.identityPrincipalId
output IDENTITY_CLIENT_ID string = app.outputs.identityClientId
