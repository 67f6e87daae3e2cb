#!/usr/bin/env bash
# Step 1 of the CLI path: the Cloud Map private DNS namespace and one Cloud Map service per ECS
# service that Prometheus scrapes, tagged with where the metrics are (METRICS_PATH, METRICS_PORT).
#
# Environment:
#   AWS_REGION          required (or AWS_DEFAULT_REGION)
#   AWS_ENDPOINT_URL    optional, e.g. an emulator
#   VPC_ID              the VPC of the namespace; when empty, the default VPC, or a new one when
#                       CREATE_VPC=true: 10.0.0.0/16 in two availability zones, a public subnet
#                       in each (internet gateway), a NAT gateway, and a private subnet in each
#                       whose route out is the NAT gateway (SUBNET_IDS; NAT gateways are charged
#                       by the hour)
#   NAMESPACE_NAME      default ecs-services
#   WEBAPP_METRICS_PORT default 3000; NODE_EXPORTER_METRICS_PORT default 9100
#
# Prints (stdout, for eval): VPC_ID, [SUBNET_IDS], CLOUDMAP_NAMESPACE_ID, CLOUDMAP_NAMESPACE_ARN,
# CLOUDMAP_WEBAPP_SERVICE_ID/_ARN, CLOUDMAP_NODE_EXPORTER_SERVICE_ID/_ARN.
# Running it again reuses what exists (and re-applies the service tags).
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_env AWS_REGION
WEBAPP_METRICS_PORT="${WEBAPP_METRICS_PORT:-3000}"
NODE_EXPORTER_METRICS_PORT="${NODE_EXPORTER_METRICS_PORT:-9100}"

# create_vpc creates a VPC with DNS support and hostnames (a private namespace and awsvpc tasks need
# both) in two availability zones: public subnets routed to an internet gateway, one NAT gateway,
# and private subnets routed to it. It emits VPC_ID and SUBNET_IDS (the private subnets).
create_vpc() {
	local vpc azs az i=0 igw public_rt private_rt eip nat subnet public=() private=()
	vpc="$(awscli ec2 create-vpc --cidr-block 10.0.0.0/16 \
		--tag-specifications 'ResourceType=vpc,Tags=[{Key=Name,Value=ecs-sd}]' \
		--query Vpc.VpcId --output text)"
	awscli ec2 modify-vpc-attribute --vpc-id "$vpc" --enable-dns-support '{"Value":true}'
	awscli ec2 modify-vpc-attribute --vpc-id "$vpc" --enable-dns-hostnames '{"Value":true}'
	igw="$(awscli ec2 create-internet-gateway --query InternetGateway.InternetGatewayId --output text)"
	awscli ec2 attach-internet-gateway --vpc-id "$vpc" --internet-gateway-id "$igw"
	public_rt="$(awscli ec2 create-route-table --vpc-id "$vpc" --query RouteTable.RouteTableId --output text)"
	awscli ec2 create-route --route-table-id "$public_rt" --destination-cidr-block 0.0.0.0/0 \
		--gateway-id "$igw" >/dev/null
	private_rt="$(awscli ec2 create-route-table --vpc-id "$vpc" --query RouteTable.RouteTableId --output text)"
	azs="$(awscli ec2 describe-availability-zones --query 'AvailabilityZones[0:2].ZoneName' --output text)"
	for az in $azs; do
		subnet="$(awscli ec2 create-subnet --vpc-id "$vpc" --availability-zone "$az" \
			--cidr-block "10.0.$((i * 16)).0/20" --query Subnet.SubnetId --output text)"
		awscli ec2 associate-route-table --route-table-id "$public_rt" --subnet-id "$subnet" >/dev/null
		public+=("$subnet")
		subnet="$(awscli ec2 create-subnet --vpc-id "$vpc" --availability-zone "$az" \
			--cidr-block "10.0.$((128 + i * 64)).0/18" --query Subnet.SubnetId --output text)"
		awscli ec2 associate-route-table --route-table-id "$private_rt" --subnet-id "$subnet" >/dev/null
		private+=("$subnet")
		i=$((i + 1))
	done
	eip="$(awscli ec2 allocate-address --domain vpc --query AllocationId --output text)"
	nat="$(awscli ec2 create-nat-gateway --subnet-id "${public[0]}" --allocation-id "$eip" \
		--query NatGateway.NatGatewayId --output text)"
	log "waiting for NAT gateway $nat"
	awscli ec2 wait nat-gateway-available --nat-gateway-ids "$nat"
	awscli ec2 create-route --route-table-id "$private_rt" --destination-cidr-block 0.0.0.0/0 \
		--nat-gateway-id "$nat" >/dev/null
	log "created VPC $vpc: public subnets ${public[*]}, NAT gateway $nat, private subnets ${private[*]}"
	emit VPC_ID "$vpc"
	local IFS=,
	emit SUBNET_IDS "${private[*]}"
}

if [[ -z "${VPC_ID:-}" ]]; then
	if [[ "${CREATE_VPC:-false}" == "true" ]]; then
		create_vpc
	else
		VPC_ID="$(awscli ec2 describe-vpcs --filters Name=isDefault,Values=true \
			--query 'Vpcs[0].VpcId' --output text)"
		if [[ -z "$VPC_ID" || "$VPC_ID" == "None" ]]; then
			die "no VPC_ID given and this region has no default VPC: set VPC_ID (or CREATE_VPC=true)"
		fi
		log "using the default VPC $VPC_ID"
		emit VPC_ID "$VPC_ID"
	fi
else
	emit VPC_ID "$VPC_ID"
fi

# wait_operation OPERATION_ID prints the namespace id the operation created once it succeeded.
wait_operation() {
	local op="$1" status tries=0
	while :; do
		status="$(awscli servicediscovery get-operation --operation-id "$op" \
			--query Operation.Status --output text)"
		case "$status" in
		SUCCESS) break ;;
		FAIL)
			die "operation $op failed: $(awscli servicediscovery get-operation --operation-id "$op" \
				--query Operation.ErrorMessage --output text)"
			;;
		esac
		tries=$((tries + 1))
		((tries < 90)) || die "operation $op still $status after 3 minutes"
		sleep 2
	done
	awscli servicediscovery get-operation --operation-id "$op" \
		--query Operation.Targets.NAMESPACE --output text
}

namespace_id="$(awscli servicediscovery list-namespaces \
	--query "Namespaces[?Name=='${NAMESPACE_NAME}' && Type=='DNS_PRIVATE'] | [0].Id" --output text)"
if [[ -z "$namespace_id" || "$namespace_id" == "None" ]]; then
	log "creating private DNS namespace $NAMESPACE_NAME in $VPC_ID"
	op="$(awscli servicediscovery create-private-dns-namespace --name "$NAMESPACE_NAME" --vpc "$VPC_ID" \
		--description "Services scraped by Prometheus through ecs-sd" \
		--query OperationId --output text)"
	namespace_id="$(wait_operation "$op")"
else
	log "reusing namespace $NAMESPACE_NAME ($namespace_id)"
fi
emit CLOUDMAP_NAMESPACE_ID "$namespace_id"
namespace_arn="$(awscli servicediscovery get-namespace --id "$namespace_id" \
	--query Namespace.Arn --output text)"
emit CLOUDMAP_NAMESPACE_ARN "$namespace_arn"

# find_service NAME prints the id of the Cloud Map service NAME in the namespace, if any.
# ListServices' namespace filter is not trusted (some emulators ignore it): GetService confirms.
find_service() {
	local name="$1" ids id ns
	ids="$(awscli servicediscovery list-services \
		--filters "Name=NAMESPACE_ID,Values=${namespace_id},Condition=EQ" \
		--query "Services[?Name=='${name}'].Id" --output text)"
	for id in $ids; do
		ns="$(awscli servicediscovery get-service --id "$id" --query Service.NamespaceId --output text)"
		if [[ "$ns" == "$namespace_id" ]]; then
			printf '%s\n' "$id"
			return
		fi
	done
}

# ensure_service NAME RECORD_TYPE METRICS_PORT PREFIX creates (or reuses) the Cloud Map service NAME
# with custom health checking (ECS reports task health to it) and the METRICS_* tags ecs-sd reads,
# and emits PREFIX_ID and PREFIX_ARN.
ensure_service() {
	local name="$1" type="$2" port="$3" prefix="$4" id arn
	local tags=("Key=METRICS_PATH,Value=/metrics" "Key=METRICS_PORT,Value=${port}")
	id="$(find_service "$name")"
	if [[ -z "$id" ]]; then
		log "creating Cloud Map service $name ($type records, metrics on :$port/metrics)"
		id="$(awscli servicediscovery create-service --name "$name" \
			--namespace-id "$namespace_id" \
			--description "Service registry for the $name ECS service" \
			--dns-config "NamespaceId=${namespace_id},RoutingPolicy=MULTIVALUE,DnsRecords=[{Type=${type},TTL=10}]" \
			--health-check-custom-config FailureThreshold=1 \
			--tags "${tags[@]}" \
			--query Service.Id --output text)"
	else
		log "reusing Cloud Map service $name ($id)"
	fi
	arn="$(awscli servicediscovery get-service --id "$id" --query Service.Arn --output text)"
	awscli servicediscovery tag-resource --resource-arn "$arn" --tags "${tags[@]}"
	emit "${prefix}_ID" "$id"
	emit "${prefix}_ARN" "$arn"
}

# The web app runs in awsvpc mode: A records (ECS registers the task's ENI address).
ensure_service webapp A "$WEBAPP_METRICS_PORT" CLOUDMAP_WEBAPP_SERVICE
# Node exporter runs in host network mode: ECS only supports SRV records there (address + port).
ensure_service node-exporter SRV "$NODE_EXPORTER_METRICS_PORT" CLOUDMAP_NODE_EXPORTER_SERVICE
