// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

/// @title Roles of every flexledger party, and the EIP-712 domain their signatures use
interface IFlexRoles is IAccessControl {
    /// @notice The caller is not the admin.
    error FlexRolesNotAdmin(address account);
    /// @notice The caller does not hold AGGREGATOR_ROLE.
    error FlexRolesNotAggregator(address account);
    /// @notice The FR owner is already granted by another aggregator.
    error FlexRolesOwnerBound(address owner, address aggregator);
    /// @notice The caller is not the aggregator that granted this FR owner.
    error FlexRolesNotOwnersAggregator(address owner, address account);
    /// @notice The address is the zero address.
    error FlexRolesZeroAddress();
    /// @notice The sensor key is already bound to another sensor id.
    error FlexRolesSensorBound(address sensor, bytes32 sensorId);
    /// @notice No sensor is bound to this sensor id.
    error FlexRolesSensorUnknown(bytes32 sensorId);

    /// @notice An aggregator granted FR_OWNER_ROLE to one of its customers.
    event FrOwnerGranted(address indexed owner, address indexed aggregator);
    /// @notice An aggregator revoked FR_OWNER_ROLE from one of its customers.
    event FrOwnerRevoked(address indexed owner, address indexed aggregator);
    /// @notice A field sensor key was bound to a sensor id (replacing `previous`, or zero).
    event SensorRegistered(bytes32 indexed sensorId, address indexed sensor, address previous);
    /// @notice A field sensor key was unbound from its sensor id.
    event SensorRevoked(bytes32 indexed sensorId, address indexed sensor);

    /// @notice The aggregator that granted `owner` its FR_OWNER_ROLE (zero when none).
    function aggregatorOf(address owner) external view returns (address);

    /// @notice The key bound to a field sensor id (zero when none).
    function sensorOf(bytes32 sensorId) external view returns (address);

    /// @notice The sensor id a field sensor key is bound to (zero when none).
    function sensorIdOf(address sensor) external view returns (bytes32);

    /// @notice The signer of an EIP-712 message of the flexledger domain, or zero when the
    /// signature is malformed.
    function recoverSigner(bytes32 structHash, bytes calldata signature) external view returns (address);

    /// @notice The EIP-712 digest of a struct hash in the flexledger domain.
    function hashTypedData(bytes32 structHash) external view returns (bytes32);

    /// @notice The EIP-712 domain separator of the flexledger domain.
    function domainSeparator() external view returns (bytes32);

    /// @notice Whether `account` holds the admin role.
    function isAdmin(address account) external view returns (bool);
}
