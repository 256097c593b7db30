// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title The settlement token: one unit is one euro cent
interface ISettlementToken {
    /// @notice The caller is not the token's admin.
    error SettlementTokenNotAdmin(address account);
    /// @notice The address is the zero address.
    error SettlementTokenZeroAddress();

    /// @notice The admin minted tokens.
    event TokensMinted(address indexed to, uint256 amount);
}
