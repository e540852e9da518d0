// The app in its own resource group: identity, storage, monitoring, the Flex Consumption plan and
// site, the data roles on its storage, and the subscription's Event Grid system topic.
targetScope = 'resourceGroup'

param location string
param tags object
@description('Short unique suffix for globally unique names.')
param token string
param defaultResourceGroup string
param defaultRegion string
param defaultVnet string
param defaultSubnet string
@description('PRIVATE_DNS_ZONE_ID: the central privatelink.file.core.windows.net zone; empty: found per VNet.')
param privateDnsZoneId string
param autoAttachTag string
@description('Client id of the API\'s app registration (AUTH_AUDIENCE): callers\' tokens are for it.')
param apiClientId string
param costDigestWebhookSecretUri string
@description('Comma-separated origins allowed to call the API from a browser (* for any); empty: none.')
param corsAllowedOrigins string
param instanceMemoryMB int
param maximumInstanceCount int

var deploymentContainer = 'app-package'
var deadLetterContainer = 'eventgrid-deadletter'
// Built-in roles (GUIDs are the same in every tenant).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-azlin-${token}'
  location: location
  tags: tags
}

// The app's own general-purpose account (queues, tables, host leases, the deployment package,
// dead letters). The NFS accounts the service creates are FileStorage and hold none of these.
resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Flex Consumption without VNet integration reaches its storage over the public endpoint; shared keys are off, so only Entra ID identities holding data roles get in
  // checkov:skip=CKV_AZURE_59: public endpoint for the same reason as CKV_AZURE_35
  // checkov:skip=CKV_AZURE_206: the account holds transient state (queue messages, host leases, operation records, the package azd uploads); LRS is available in every region
  // checkov:skip=CKV_AZURE_43: the name is 'stazlin' + uniqueString(), 20 lowercase letters and digits; checkov cannot evaluate the interpolation
  name: 'stazlin${token}'
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource packageContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainer
  properties: {
    publicAccess: 'None'
  }
}

resource deadLetters 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deadLetterContainer
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-azlin-${token}'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
  }
}

// Telemetry only with an Entra ID token (the app identity, Monitoring Metrics Publisher): the
// connection string below is an address, not a credential.
resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-azlin-${token}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
    DisableLocalAuth: true
  }
}

resource queueLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'queue-logs'
  scope: queueService
  properties: {
    workspaceId: logs.id
    logs: [
      {
        category: 'StorageRead'
        enabled: true
      }
      {
        category: 'StorageWrite'
        enabled: true
      }
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
  }
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Flex Consumption zone redundancy exists only in some regions; the service keeps its state in storage and scales from zero
  name: 'plan-azlin-${token}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

var baseSettings = [
  {
    name: 'AzureWebJobsStorage__accountName'
    value: storage.name
  }
  {
    name: 'AzureWebJobsStorage__credential'
    value: 'managedidentity'
  }
  {
    name: 'AzureWebJobsStorage__clientId'
    value: identity.properties.clientId
  }
  {
    // DefaultAzureCredential (Resource Manager) picks the user-assigned identity by this
    name: 'AZURE_CLIENT_ID'
    value: identity.properties.clientId
  }
  {
    name: 'AZURE_SUBSCRIPTION_ID'
    value: subscription().subscriptionId
  }
  {
    name: 'DEFAULT_RESOURCE_GROUP'
    value: defaultResourceGroup
  }
  {
    name: 'DEFAULT_REGION'
    value: defaultRegion
  }
  {
    name: 'AUTO_ATTACH_TAG'
    value: autoAttachTag
  }
  {
    // Callers: Entra ID tokens of this tenant for the API's app registration (validated in the app)
    name: 'AUTH_TENANT_ID'
    value: tenant().tenantId
  }
  {
    name: 'AUTH_AUDIENCE'
    value: apiClientId
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: insights.properties.ConnectionString
  }
  {
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: 'ClientId=${identity.properties.clientId};Authorization=AAD'
  }
  {
    // The app sends traces (Azure Monitor OpenTelemetry distro); the Functions host already sends
    // its logs and metrics, which the distro would send a second time
    name: 'OTEL_LOGS_EXPORTER'
    value: 'none'
  }
  {
    name: 'OTEL_METRICS_EXPORTER'
    value: 'none'
  }
]
var networkSettings = empty(defaultVnet) ? [] : [
  {
    name: 'DEFAULT_VNET'
    value: defaultVnet
  }
  {
    name: 'DEFAULT_SUBNET'
    value: defaultSubnet
  }
]
var dnsSettings = empty(privateDnsZoneId) ? [] : [
  {
    name: 'PRIVATE_DNS_ZONE_ID'
    value: privateDnsZoneId
  }
]
// A Key Vault reference, resolved by the platform with keyVaultReferenceIdentity: the token in
// the webhook URL never sits in the app settings.
var digestSettings = empty(costDigestWebhookSecretUri) ? [] : [
  {
    name: 'COST_DIGEST_WEBHOOK_URL'
    value: '@Microsoft.KeyVault(SecretUri=${costDigestWebhookSecretUri})'
  }
]

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: portals call the HTTP API and Event Grid delivers to it over the internet; every API call needs an Entra ID token, validated and authorized in the app
  // checkov:skip=CKV_AZURE_17: client certificates would stop Event Grid deliveries and portal calls; callers authenticate with Entra ID tokens
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales per function from zero; there is no instance minimum to set for failover
  // checkov:skip=CKV_AZURE_78: siteConfig.ftpsState is not supported on Flex Consumption (flex-consumption-plan.md, deprecated properties); it has no FTP deployment to disable
  // checkov:skip=CKV_AZURE_213: no platform health-check probe on a plan that scales to zero; /api/health serves external monitors
  name: 'func-azlin-${token}'
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    keyVaultReferenceIdentity: identity.id
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      http20Enabled: true
      // The platform answers CORS preflights and adds Access-Control-Allow-Origin for these
      // origins before the app runs (the local host does the same from CORS_ALLOWED_ORIGINS).
      cors: {
        allowedOrigins: empty(corsAllowedOrigins) ? [] : split(replace(corsAllowedOrigins, ' ', ''), ',')
      }
      appSettings: concat(baseSettings, networkSettings, dnsSettings, digestSettings)
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainer}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
  dependsOn: [
    blobOwner
    queueContributor
    tableContributor
    metricsPublisher
  ]
}

// No publishing with user names and passwords: deployments authenticate with Entra ID.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

// Data roles of the app identity, on its own account only: blobs (host leases and the Flex
// deployment package, which the platform reads with this identity), queues and tables.
resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource queueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource tableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, roles.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(insights.id, identity.id, roles.monitoringMetricsPublisher)
  scope: insights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// One system topic per subscription source is allowed: a subscription that already has one for
// Microsoft.Resources.Subscriptions must reuse it (README).
resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: 'evgt-azlin-${token}'
  location: 'global'
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: subscription().id
    topicType: 'Microsoft.Resources.Subscriptions'
  }
}

// The topic's own identity writes undeliverable events, and only into the dead-letter container.
resource deadLetterWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetters.id, systemTopic.id, roles.storageBlobDataContributor)
  scope: deadLetters
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: systemTopic.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

output identityPrincipalId string = identity.properties.principalId
output identityClientId string = identity.properties.clientId
output functionAppName string = site.name
output functionAppUrl string = 'https://${site.properties.defaultHostName}'
output storageAccountName string = storage.name
output systemTopicName string = systemTopic.name
output deadLetterContainer string = deadLetterContainer
