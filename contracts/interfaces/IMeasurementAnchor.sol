// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title Light Node devices bound to their POD, and the Merkle roots of their measurements
interface IMeasurementAnchor {
    /// @notice One 4-second measurement (leaf kind 1).
    struct Sample {
        bytes32 pod;
        uint64 t;
        int64 pW;
        int64 qVar;
        uint64 vMv;
        uint64 seq;
    }

    /// @notice A device's window as a leaf of a concentrator batch (leaf kind 3).
    struct Window {
        bytes32 pod;
        uint64 windowStart;
        bytes32 root;
        uint32 sampleCount;
        bytes32 setpointsHash;
    }

    /// @notice The caller is not the admin of FlexRoles.
    error MeasurementAnchorNotAdmin(address account);
    /// @notice The caller is not the device bound to this POD.
    error MeasurementAnchorNotDevice(bytes32 pod, address account);
    /// @notice The caller does not hold CONCENTRATOR_ROLE.
    error MeasurementAnchorNotConcentrator(address account);
    /// @notice This window of this POD is already anchored.
    error MeasurementAnchorWindowTaken(bytes32 pod, uint64 windowStart);
    /// @notice The window start is not a multiple of the window length.
    error MeasurementAnchorWindowUnaligned(uint64 windowStart, uint64 windowSeconds);
    /// @notice A zero root (an empty tree has no root).
    error MeasurementAnchorEmptyRoot();
    /// @notice This batch of this concentrator is already anchored.
    error MeasurementAnchorBatchTaken(address concentrator, uint64 batchId);
    /// @notice The device key is already bound to another POD.
    error MeasurementAnchorDeviceBound(address device, bytes32 pod);
    /// @notice No device is bound to this POD.
    error MeasurementAnchorNoDevice(bytes32 pod);
    /// @notice The address is the zero address.
    error MeasurementAnchorZeroAddress();
    /// @notice The window length is zero.
    error MeasurementAnchorZeroWindow();

    /// @notice A device key was bound to a POD (replacing `previous`, or zero).
    event DeviceRegistered(bytes32 indexed pod, address indexed device, address previous);
    /// @notice A device key was unbound from its POD.
    event DeviceRevoked(bytes32 indexed pod, address indexed device);
    /// @notice A device anchored the root of one window of its POD.
    event MeasurementsAnchored(
        bytes32 indexed pod,
        uint64 indexed windowStart,
        bytes32 root,
        uint32 sampleCount,
        bytes32 setpointsHash
    );
    /// @notice A concentrator anchored the root of a batch of devices' window leaves.
    event BatchAnchored(
        address indexed concentrator,
        uint64 indexed batchId,
        bytes32 root,
        uint32 windowCount,
        uint32 sampleCount
    );

    /// @notice The device key bound to a POD (zero when none).
    function deviceOf(bytes32 pod) external view returns (address);

    /// @notice The POD a device key is bound to (zero when none).
    function podOf(address device) external view returns (bytes32);

    /// @notice The anchored root of a POD's window (zero when not anchored).
    function windowRoot(bytes32 pod, uint64 windowStart) external view returns (bytes32);

    /// @notice The anchored root of a concentrator's batch (zero when not anchored).
    function batchRoot(address concentrator, uint64 batchId) external view returns (bytes32);
}
