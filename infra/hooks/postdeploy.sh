#!/bin/sh
# azd postdeploy hook: create (or update) the Event Grid subscription that sends VM writes to the
# auto-attach function. It runs after the code is deployed because Event Grid refuses a
# subscription whose destination function does not exist yet. azd exports the outputs of
# infra/main.bicep as environment variables; `az` must be signed in to the same subscription.
set -eu

: "${AZURE_RESOURCE_GROUP:?run through azd (azd up / azd deploy)}"
: "${FUNCTION_APP_NAME:?}" "${SYSTEM_TOPIC_NAME:?}" "${STORAGE_ACCOUNT_NAME:?}" "${MANAGED_RESOURCE_GROUPS:?}"

# The platform indexes the new package within a minute or two: wait for the trigger to appear.
tries=0
until az functionapp function show --resource-group "$AZURE_RESOURCE_GROUP" --name "$FUNCTION_APP_NAME" \
        --function-name on_resource_event --query name --output tsv >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -ge 30 ]; then
        echo "on_resource_event is not listed on $FUNCTION_APP_NAME after 5 minutes; run azd deploy again" >&2
        exit 1
    fi
    sleep 10
done

az deployment group create \
    --name azlin-events \
    --resource-group "$AZURE_RESOURCE_GROUP" \
    --template-file "$(dirname "$0")/../events.bicep" \
    --parameters systemTopicName="$SYSTEM_TOPIC_NAME" functionAppName="$FUNCTION_APP_NAME" \
                 storageAccountName="$STORAGE_ACCOUNT_NAME" deadLetterContainer="${DEAD_LETTER_CONTAINER:-eventgrid-deadletter}" \
                 managedResourceGroups="$MANAGED_RESOURCE_GROUPS" \
    --output none
echo "Event Grid subscription azlin-vm-writes delivers VM writes to $FUNCTION_APP_NAME/on_resource_event"
