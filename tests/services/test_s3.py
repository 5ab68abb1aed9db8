"""The S3 fixture is a real HTTP S3 endpoint: buckets, put, get, list by prefix."""

import aioboto3


async def test_put_get_list(s3_server):
    session = aioboto3.Session(
        aws_access_key_id=s3_server.ACCESS_KEY, aws_secret_access_key=s3_server.SECRET_KEY,
        region_name=s3_server.REGION,
    )
    async with session.client("s3", endpoint_url=s3_server.endpoint) as s3:
        await s3.create_bucket(Bucket="fixture")
        await s3.put_object(Bucket="fixture", Key="models/mnist/model.bin", Body=b"\x00\x01weights")
        await s3.put_object(Bucket="fixture", Key="models/mnist2/model.bin", Body=b"other")
        obj = await s3.get_object(Bucket="fixture", Key="models/mnist/model.bin")
        assert await obj["Body"].read() == b"\x00\x01weights"
        listed = await s3.list_objects_v2(Bucket="fixture", Prefix="models/mnist/")
        assert [o["Key"] for o in listed["Contents"]] == ["models/mnist/model.bin"]
        missing = await s3.list_objects_v2(Bucket="fixture", Prefix="nothing/")
        assert missing["KeyCount"] == 0
