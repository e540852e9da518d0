// The Event Grid subscription that delivers VM writes to the auto-attach function. Deployed after
// the code (infra/hooks/postdeploy.sh, or by hand after the first deployment of the app): Event
// Grid checks that the destination function exists when the subscription is created.
targetScope = 'resourceGroup'

param systemTopicName string
param functionAppName string
param storageAccountName string
param deadLetterContainer string = 'eventgrid-deadletter'

@minLength(1)
@maxLength(20)
@description('The managed resource groups (as in main.bicep): only their VMs are delivered.')
param managedResourceGroups array

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: systemTopicName
}

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource vmWrites 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: systemTopic
  name: 'azlin-vm-writes'
  properties: {
    eventDeliverySchema: 'EventGridSchema'
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${site.id}/functions/on_resource_event'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    filter: {
      includedEventTypes: [
        'Microsoft.Resources.ResourceWriteSuccess'
      ]
      // Exact match: runCommands/write and extensions/write (the service's own Run Commands)
      // are other operations and must not wake the function. The subject filter keeps events
      // to the groups where the identity may read VMs.
      advancedFilters: [
        {
          operatorType: 'StringIn'
          key: 'data.operationName'
          values: [
            'Microsoft.Compute/virtualMachines/write'
          ]
        }
        {
          operatorType: 'StringBeginsWith'
          key: 'subject'
          values: [for name in managedResourceGroups: '${subscription().id}/resourceGroups/${name}/providers/Microsoft.Compute/virtualMachines/']
        }
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: storage.id
          blobContainerName: deadLetterContainer
        }
      }
    }
  }
}

output eventSubscriptionId string = vmWrites.id
