"""The endpoint conformance suite (hpcai.storage.testing.EndpointTests) on every endpoint type:
moto S3 (EU on-prem, US cloud, metadata tags), POSIX (xattrs, sidecars) and, when
``HPCAI_TEST_RGW`` names one (``ci/rgw.sh start DIR``), a real Ceph RGW."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hpcai.storage.testing import EndpointTests

EU = {"country": "DE", "jurisdiction": "EU", "provider": "onprem"}


class TestOnpremS3(EndpointTests):
    """The EU on-prem object store on moto (S3 object tags)."""

    @pytest.fixture
    def endpoint_tables(self, moto_onprem_table: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return "onprem", {"endpoints": {"onprem": moto_onprem_table}}


class TestCloudS3(EndpointTests):
    """The US cloud object store."""

    @pytest.fixture
    def endpoint_tables(self, cloud_table: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return "cloud", {"endpoints": {"cloud": cloud_table}}


class TestS3MetadataTags(EndpointTests):
    """An S3 store without object tagging (moto): tags in object metadata."""

    @pytest.fixture
    def endpoint_tables(self, moto_onprem_table: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return "meta", {"endpoints": {"meta": {**moto_onprem_table, "tag_store": "metadata"}}}


class TestCephRGW(EndpointTests):
    """A real Ceph RGW (S3 object tags); skipped unless HPCAI_TEST_RGW names one."""

    @pytest.fixture
    def endpoint_tables(self, rgw_table: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return "onprem", {"endpoints": {"onprem": rgw_table}}


class TestCephRGWMetadataTags(EndpointTests):
    """Ceph RGW with tags in object metadata only; skipped unless HPCAI_TEST_RGW names one."""

    @pytest.fixture
    def endpoint_tables(self, rgw_table: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return "meta", {"endpoints": {"meta": {**rgw_table, "tag_store": "metadata"}}}


@pytest.mark.endpoint("posix")
class TestPosixXattr(EndpointTests):
    """A POSIX directory with user extended attributes."""

    @pytest.fixture
    def endpoint_tables(self, tmp_path: Path) -> tuple[str, dict[str, Any]]:
        root = tmp_path / "posix"
        root.mkdir()
        return "scratch", {"endpoints": {"scratch": {"url": "file://" + str(root), "attributes": EU, "tag_store": "xattr"}}}


@pytest.mark.endpoint("posix")
class TestPosixSidecar(EndpointTests):
    """A POSIX directory without xattrs: hidden sidecar files."""

    @pytest.fixture
    def endpoint_tables(self, tmp_path: Path) -> tuple[str, dict[str, Any]]:
        root = tmp_path / "posix"
        root.mkdir()
        return "lustre", {"endpoints": {"lustre": {"url": "file://" + str(root), "attributes": EU, "tag_store": "sidecar"}}}
