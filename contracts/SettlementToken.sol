// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ISettlementToken} from "./interfaces/ISettlementToken.sol";

/// @title SettlementToken: euro cents on chain
/// @notice ERC-20 with 2 decimals, one unit = one euro cent; minted by its admin (the DSOs and
/// TSOs buy it off chain). Payments move it by allowance through Settlement.
contract SettlementToken is ERC20, AccessControl, ISettlementToken {
    /// @param admin The account that mints (and may grant the admin role to others).
    constructor(address admin) ERC20("flexledger euro cent", "FLEXEUR") {
        if (admin == address(0)) revert SettlementTokenZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @notice One unit is one euro cent.
    function decimals() public pure override returns (uint8) {
        return 2;
    }

    /// @notice Mint tokens.
    /// @param to The receiver.
    /// @param amount Amount in euro cents.
    function mint(address to, uint256 amount) external {
        if (!hasRole(DEFAULT_ADMIN_ROLE, msg.sender)) revert SettlementTokenNotAdmin(msg.sender);
        _mint(to, amount);
        emit TokensMinted(to, amount);
    }
}
