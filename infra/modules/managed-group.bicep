// The service's custom role at one managed resource group.
targetScope = 'resourceGroup'

param roleDefinitionId string
param principalId string

resource grant 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, roleDefinitionId)
  properties: {
    roleDefinitionId: roleDefinitionId
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'azlin storage service: NFS storage and VM attachments in this group'
  }
}
