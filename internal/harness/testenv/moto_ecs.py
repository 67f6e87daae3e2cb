"""Start moto_server with its ECS emulation patched to answer like AWS where ecs-sd's tests need it.

Usage: python3 moto_ecs.py -H 127.0.0.1 -p PORT  (the arguments of moto_server)

moto 5.2.1's ECS differs from AWS in ways that would make ecs-sd's ECS tests test moto rather than
ecs-sd. This launcher patches moto in memory, then starts its server; ecs-sd talks to it as to AWS
and no product code knows about it. Each patch, with the gap it fills:

 1. Containers. DescribeTasks shows one container per task (the first container definition), with
    the task definition's ARN as its taskArn and cpu/memory as JSON numbers, which aws-sdk-go-v2
    refuses to decode ("expected string"). Patched: one container per container definition, the
    task's ARN, cpu/memory as strings, lastStatus RUNNING, healthStatus UNKNOWN, container ARNs in
    AWS's form (container/CLUSTER/TASK_ID/UUID).
 2. Network bindings. Bridge and host tasks have none. Patched: bridge gets one binding per port
    mapping, a hostPort of 0 (or none) drawing a dynamic port from the container instance's
    ephemeral range (32768 up, distinct per instance, as the ECS agent does); host mode binds the
    container port itself. awsvpc containers get networkInterfaces with the task ENI's address.
 3. Port reservations. A dynamic host port is reserved as port "0", so no second bridge task with
    a dynamic port fits on an instance, and awsvpc mappings reserve host ports. Patched: only fixed
    host ports are reserved (bridge: hostPort > 0; host: the port; awsvpc: none).
 4. Task facts. launchType is empty for RunTask without one and for StartTask (AWS: EC2);
    availabilityZone and healthStatus are missing. Patched: EC2 by default, the zone of the ENI's
    subnet (awsvpc) or of the container instance, healthStatus UNKNOWN (no container health check).
 5. Task state. Every DescribeTasks advances a task towards STOPPED unless the state manager is
    told otherwise, and /moto-api/reset forgets that. Patched: a task keeps its state until StopTask.
 6. ListTasks matches its cluster by substring (cluster "prod" also lists "prod-2"'s tasks) and
    never pages; ListClusters never pages. Patched: the exact cluster, and pages of maxResults
    (default 100, as on AWS) chained by nextToken.
 7. Batch maxima are not enforced. Patched: more than 100 tasks (DescribeTasks), container
    instances (DescribeContainerInstances) or clusters (DescribeClusters), or more than 10 services
    (DescribeServices), fail with InvalidParameterException as on AWS.
 8. The threaded server runs requests at once over unsynchronised dicts (ListTasks iterating while
    RunTask inserts raises "dictionary changed size"). Patched: one request at a time.
"""

import inspect
import sys
import threading

import moto.server as server
from moto.core.responses import ActionResult
from moto.ec2 import ec2_backends
from moto.ecs import models, responses
from moto.ecs.exceptions import InvalidParameterException
from moto.moto_api._internal import mock_random

EPHEMERAL_PORT_START = 32768

# 1, 2, 4: containers, bindings and task facts.

_task_init = models.Task.__init__
_task_init_signature = inspect.signature(_task_init)
_next_port = {}  # container instance ARN -> next dynamic host port (kept across /moto-api/reset: harmless)


def _task_init_patched(self, *args, **kwargs):
    _task_init(self, *args, **kwargs)
    task_definition = _task_init_signature.bind(self, *args, **kwargs).arguments["task_definition"]
    if not self.launch_type:
        self.launch_type = "EC2"
    self.health_status = "UNKNOWN"
    self.availability_zone = _availability_zone(self)
    self.containers = [_container(self, task_definition, d) for d in task_definition.container_definitions]


def _eni_detail(task, name):
    for attachment in task.attachments:
        for detail in attachment["details"]:
            if detail["name"] == name:
                return detail["value"]
    return None


def _availability_zone(task):
    subnet = _eni_detail(task, "subnetId")
    if subnet:
        return ec2_backends[task._account_id][task.region_name].get_subnet(subnet).availability_zone
    if task.container_instance_arn:
        instance_id = task.container_instance_arn.split("/")[-1]
        instance = task._backend.container_instances[task.cluster_name][instance_id]
        return instance.attributes.get("ecs.availability-zone")
    return None


def _container(task, task_definition, definition):
    c = models.Container.__new__(models.Container)
    c.container_arn = (
        f"arn:aws:ecs:{task.region_name}:{task._account_id}:container/"
        f"{task.cluster_name}/{task.id}/{mock_random.uuid4()}"
    )
    c.task_arn = task.task_arn
    c.name = definition.get("name")
    c.image = definition.get("image")
    c.last_status = "RUNNING"
    c.health_status = "UNKNOWN"
    c.cpu = str(definition.get("cpu", 0))
    c.memory = str(definition["memory"]) if definition.get("memory") is not None else None
    c.network_bindings = _bindings(task, task_definition.network_mode, definition)
    c.network_interfaces = []
    address = _eni_detail(task, "privateIPv4Address")
    if address:
        c.network_interfaces = [{"attachmentId": task.attachments[0]["id"], "privateIpv4Address": address}]
    return c


def _bindings(task, network_mode, definition):
    bindings = []
    for mapping in definition.get("portMappings", []):
        port = mapping["containerPort"]
        if network_mode == "host":
            host_port = mapping.get("hostPort") or port
        elif network_mode == "bridge" and task.container_instance_arn:
            host_port = mapping.get("hostPort") or _dynamic_port(task.container_instance_arn)
        else:
            continue
        bindings.append({
            "bindIP": "0.0.0.0",
            "containerPort": port,
            "hostPort": host_port,
            "protocol": mapping.get("protocol", "tcp"),
        })
    return bindings


def _dynamic_port(container_instance_arn):
    port = _next_port.get(container_instance_arn, EPHEMERAL_PORT_START)
    _next_port[container_instance_arn] = port + 1
    return port


models.Task.__init__ = _task_init_patched

# 3: port reservations.

_resource_requirements = models.EC2ContainerServiceBackend._calculate_task_resource_requirements


def _resource_requirements_patched(task_definition):
    requirements = _resource_requirements(task_definition)
    ports = []
    for definition in task_definition.container_definitions:
        for mapping in definition.get("portMappings", []):
            if task_definition.network_mode == "host":
                ports.append(mapping.get("hostPort") or mapping["containerPort"])
            elif task_definition.network_mode == "bridge" and mapping.get("hostPort"):
                ports.append(mapping["hostPort"])
    requirements["PORTS"] = ports
    return requirements


models.EC2ContainerServiceBackend._calculate_task_resource_requirements = staticmethod(_resource_requirements_patched)

# 5: task state.

models.Task.advance = lambda self: None

# 6: ListTasks and ListClusters.


def _page(items, token, max_results):
    start = int(token) if token else 0
    end = start + int(max_results or 100)
    return items[start:end], (str(end) if end < len(items) else None)


def _list_tasks(self):
    cluster = self.ecs_backend._get_cluster(self._get_param("cluster", "default"))
    tasks = self.ecs_backend.list_tasks(
        cluster.name,
        self._get_param("containerInstance"),
        self._get_param("family"),
        self._get_param("startedBy"),
        self._get_param("serviceName"),
        self._get_param("desiredStatus"),
    )
    arns = [t.task_arn for t in tasks if t.cluster_name == cluster.name]
    page, token = _page(arns, self._get_param("nextToken"), self._get_param("maxResults"))
    return ActionResult({"taskArns": page, "nextToken": token})


def _list_clusters(self):
    page, token = _page(self.ecs_backend.list_clusters(), self._get_param("nextToken"), self._get_param("maxResults"))
    return ActionResult({"clusterArns": page, "nextToken": token})


responses.EC2ContainerServiceResponse.list_tasks = _list_tasks
responses.EC2ContainerServiceResponse.list_clusters = _list_clusters

# 7: batch maxima.


def _limit(operation, param, maximum):
    original = getattr(responses.EC2ContainerServiceResponse, operation)

    def limited(self):
        items = self._get_param(param) or []
        if len(items) > maximum:
            raise InvalidParameterException(f"{param} can have at most {maximum} items, got {len(items)}.")
        return original(self)

    setattr(responses.EC2ContainerServiceResponse, operation, limited)


_limit("describe_tasks", "tasks", 100)
_limit("describe_container_instances", "containerInstances", 100)
_limit("describe_clusters", "clusters", 100)
_limit("describe_services", "services", 10)

# 8: one request at a time.

_run_simple = server.run_simple


def _run_simple_serialised(host, port, app, **kwargs):
    lock = threading.Lock()

    def serialised(environ, start_response):
        with lock:
            return list(app(environ, start_response))

    return _run_simple(host, port, serialised, **kwargs)


server.run_simple = _run_simple_serialised

if __name__ == "__main__":
    server.main(sys.argv[1:])
