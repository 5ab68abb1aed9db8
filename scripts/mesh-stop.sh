#!/bin/sh
# The mesh container's preStop, installed in the image as /opt/kserve/mmesh/stop.sh: the
# reference's path and argument ("wait": block until the mesh has handed off its models and is
# about to exit), so runtime Deployments work with either mesh image.
if [ "$1" = "wait" ]; then
    exec modelmesh runtime stop --wait
fi
exec modelmesh runtime stop
